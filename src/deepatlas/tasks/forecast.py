"""Multi-horizon forecasting of windowed series, scored like the classical baselines.

The model maps a scaled input window (B, context, 1 + k) to the ``horizon`` scaled values after
the origin: ``model(x)`` is (B, h) point forecasts, or with levels tau_1 < ... < tau_Q
(``task.quantiles``) (B, h * Q) raw outputs made into non-crossing quantiles per step by the
:class:`~deepatlas.tasks.quantile.QuantileHead` construction (u_a = z_a + b_a, neighbours a
softplus step apart; here in the series' scaled units, mean 0, std 1).

With ``task.normalize=last`` (the default) the network sees the window relative to its last value
and forecasts the change from it, f = g(x - x_c) + x_c on the value channel (covariates untouched;
NLinear, Zeng, Chen, Zhang & Xu, 2023, sec. 4): a trending series (co2) leaves the range of the
values the scaling was fitted on, and level-free inputs let the network extrapolate the level.
Quantiles are shifted by the same x_c, so they still do not cross.

Training losses, in scaled units: the MAE (``task.loss=mae``, the point forecast targets the
median, which MASE rewards) or MSE; with quantiles the pinball loss averaged over steps and
levels (Koenker & Bassett, 1978), rho_tau(e) = max(tau e, (tau - 1) e), from
:func:`deepatlas.metrics.intervals.pinball`.

Validation is in the series' original units: each window's forecast is unscaled with its
series' fitted mean and std (the bundle meta's ``scaling``) and scored per window with
:mod:`deepatlas.metrics.forecast`: MASE (Hyndman & Koehler, 2006) with the in-sample
seasonal-naive MAE of the whole history before the origin as its scale (the meta's
``windows[split].mase_scale``, the quantity
:func:`deepatlas.forecast_baselines.evaluate_forecaster` divides by), sMAPE (M4), MAE; per-window
values are averaged over windows as in M4 and in the baselines. With quantiles also the band's
``coverage`` and ``width`` (the levels (1 - c)/2 and (1 + c)/2 for ``task.coverage`` = c, else the
outermost pair) and the mean pinball loss in original units. A split is recognised from its windows
(count and first outcomes); a split without window meta (``train``) reports MAE and sMAPE but no MASE.

**Conformal intervals.** With ``data.calibration_windows`` = K > 0 (K windows before the validation
origins that no training step sees) the run is calibrated after training, per forecast step j
(the error grows with the lead time, so each step gets its own correction): split conformal
(Lei et al., 2018) around the point forecast, scores |y_j - f_j|, or CQR (Romano et al., 2019)
around the trained band, scores max(q_lo,j - y_j, y_j - q_hi,j); Q_j is the ceil((K + 1) c)-th
smallest of the K scores (:mod:`deepatlas.conformal`), in scaled units, and the interval is
[f_j - Q_j, f_j + Q_j] or [q_lo,j - Q_j, q_hi,j + Q_j]. The windows of one series overlap, so the
scores are not exchangeable in the strict sense and the guarantee is approximate (what the test
coverage measures). Once calibrated the evaluation reports ``conformal_coverage`` and
``conformal_width``, ``predict`` gives the conformal ``lower``/``upper`` and ``predict_interval``
answers at the calibrated coverage.

A run trained with two or more levels can also ``predict_quantiles`` (levels between the trained
ones interpolated) and, uncalibrated, ``predict_interval`` from the raw quantile band; its
capabilities are set per instance, since they follow ``task.quantiles`` and the calibration.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..conformal import conformal_quantile, cqr_scores
from ..errors import CapabilityError, ConfigError, DataError
from ..metrics.forecast import forecast_pinball, mae, smape
from ..metrics.intervals import pinball
from ..metrics.regression import crps
from ..nn.distributions import Head, TargetScale, nll, reshape_distribution
from ..nn.distributions import quantiles as dist_quantiles
from ..registry import TASKS
from ..schema import option
from .base import StepOutput, Task
from .quantile import QuantileHead, interpolate_quantiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForecastConfig:
    quantiles: tuple[float, ...] = option((), "quantile levels per step (increasing, in (0, 1)); empty: point forecasts",
                                          low=0.0, high=1.0)
    loss: Literal["mae", "mse"] = option("mae", "point forecasts: the training loss in scaled units")
    normalize: Literal["last", "none"] = option(
        "last", "last: the network sees the window minus its last value and forecasts the change (NLinear); none: raw windows")
    coverage: float = option(0.9, "the interval's nominal coverage: the quantile band (1-c)/2..(1+c)/2 and the conformal level",
                             low=0.0, high=1.0)
    distribution: Literal["none", "normal", "laplace", "student-t"] = option(
        "none", "a predictive distribution per step, fitted by its negative log-likelihood (none: point forecasts or quantiles)")


class Forecasting(Task):
    monitor = ("mase", "min")
    low_precision_ok = False  # float32 likelihoods whatever the speed (Task.low_precision_ok)
    directions: ClassVar[Mapping[str, str]] = {
        "loss": "min", "mase": "min", "smape": "min", "mae": "min", "coverage": "max", "width": "min", "pinball": "min",
        "crps": "min", "nll": "min", "conformal_coverage": "max", "conformal_width": "min",
    }
    capabilities = frozenset({"predict"})
    predicts = "values"
    data_kind = "series"

    def __init__(self, config: ForecastConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        levels = tuple(float(t) for t in config.quantiles)
        if any(not 0.0 < t < 1.0 for t in levels) or any(b <= a for a, b in itertools.pairwise(levels)):
            raise ConfigError(f"task.quantiles: {list(levels)} must be increasing levels strictly between 0 and 1, "
                              "e.g. [0.05, 0.5, 0.95] (or [] for point forecasts).")
        if not 0.0 < config.coverage < 1.0:
            raise ConfigError(f"task.coverage: must lie strictly between 0 and 1, got {config.coverage} (e.g. 0.9).")
        if "horizon" not in meta or "scaling" not in meta:
            raise DataError("data: the forecasting task needs a series dataset (co2, sunspots, elnino, series-csv...).")
        if levels and config.distribution != "none":
            raise ConfigError(f"task.quantiles, task.distribution: choose one (quantiles {list(levels)} or the "
                              f"{config.distribution} distribution; the other stays [] / none).")
        self.levels = levels
        self.horizon = int(meta["horizon"])
        self.head = QuantileHead(levels, 0.0, 1.0) if levels else None
        # in scaled units (mean 0, std 1): loc = r_0, so the last-value shift moves r_0
        self.dist_head = Head(config.distribution, TargetScale()) if config.distribution != "none" else None
        self.band = self._band(levels, config.coverage)
        self.correction: np.ndarray | None = None  # (h, 2): Q_lo, Q_hi per step in scaled units, once calibrated
        self.calibrated_coverage: float | None = None
        # what a run can do depends on its levels and its calibration split: the instance narrows the class's declaration
        self.calibrates = bool(meta.get("calibration_windows"))
        caps = {"predict"} | ({"quantiles", "interval"} if len(levels) >= 2 else set()) | ({"interval"} if self.calibrates else set())
        if self.dist_head is not None:
            caps |= {"distribution", "quantiles", "interval"}
        self.capabilities = frozenset(caps)

    @staticmethod
    def _band(levels: tuple[float, ...], coverage: float) -> tuple[int, int] | None:
        """Indices of the levels (1 - c)/2 and (1 + c)/2, else of the outermost pair; None without two levels."""
        if len(levels) < 2:
            return None
        near = [[i for i, t in enumerate(levels) if abs(t - p) < 1e-9] for p in ((1 - coverage) / 2, (1 + coverage) / 2)]
        return (near[0][0], near[1][0]) if near[0] and near[1] else (0, len(levels) - 1)

    def model_meta(self) -> dict[str, Any]:
        per_step = self.dist_head.num_outputs if self.dist_head is not None else max(1, len(self.levels))
        return {"num_outputs": self.horizon * per_step}

    # ----------------------------------------------------------------- forecasts in scaled units

    def forecast(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(B, h) point forecasts, (B, h, Q) non-crossing quantiles, or (B, h, k) raw distribution parameters
        (r_0 the location), in scaled units."""
        level = None
        if self.config.normalize == "last":
            level = x[:, -1:, :1].float()  # (B, 1, 1): the last value of the window
            x = torch.cat([x[..., :1] - level, x[..., 1:]], dim=-1)
        out = model(x).float()
        if self.dist_head is not None:
            raw = out.reshape(out.shape[0], self.horizon, -1)
            return raw if level is None else torch.cat([raw[..., :1] + level, raw[..., 1:]], dim=-1)
        if self.head is None:
            return out if level is None else out + level[:, :, 0]
        b, q = out.shape[0], len(self.levels)
        f = self.head.standardized(out.reshape(b * self.horizon, q)).reshape(b, self.horizon, q)
        return f if level is None else f + level

    def distribution(self, f: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> Any:
        """The predictive distribution of raw parameters ``f`` (B, h, k), batch shape (B * h,), in the units
        x = mean + std * z (the defaults: scaled units)."""
        head = self.dist_head if (mean, std) == (0.0, 1.0) else Head(self.config.distribution, TargetScale(mean, std))
        return head(f.reshape(-1, f.shape[-1]))

    def _point(self, f: torch.Tensor) -> torch.Tensor:
        """The point forecast (B, h): itself, the median (interpolated when 0.5 is not a level), or the
        distribution's location (its mean and median: the families are symmetric)."""
        if self.dist_head is not None:
            return f[..., 0]
        if self.head is None:
            return f
        b = f.shape[0]
        return interpolate_quantiles(f.reshape(b * self.horizon, -1), self.levels, [0.5]).reshape(b, self.horizon)

    def _loss_rows(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        f, y = self.forecast(model, x), y.float()
        if self.dist_head is not None:
            rows = nll(self.distribution(f), y.reshape(-1)).reshape(len(y), -1).mean(dim=1)
        elif self.head is not None:
            tau = torch.tensor(self.levels, dtype=f.dtype, device=f.device)
            rows = pinball(y[..., None], f, tau).mean(dim=(1, 2))
        elif self.config.loss == "mse":
            rows = F.mse_loss(f, y, reduction="none").mean(dim=1)
        else:
            rows = F.l1_loss(f, y, reduction="none").mean(dim=1)
        return rows, f

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        rows, _ = self._loss_rows(model, batch)
        loss = rows.mean()
        return StepOutput(loss, {"loss": loss.detach()})

    # ----------------------------------------------------------------- validation in original units

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        rows, f = self._loss_rows(model, batch)
        stats = {"n": torch.tensor(float(len(rows)), dtype=torch.float64), "loss": rows.double().sum(),
                 "rows/target": batch[1].double(), "rows/point": self._point(f).double()}
        if self.head is not None:
            stats["rows/quantiles"] = f.double()
        if self.dist_head is not None:
            stats["rows/raw"] = f.double()
        return stats

    def _windows(self, first: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(series index, MASE scale) of each row: the split whose windows' first outcomes match ``first`` (scaled)."""
        scaling = self.meta["scaling"]
        for spec in (self.meta.get("windows") or {}).values():
            series = np.asarray(spec["series"], dtype=np.int64)
            if len(series) != len(first):
                continue
            mean = np.array([scaling[i]["mean"] for i in series])
            std = np.array([scaling[i]["std"] for i in series])
            if np.allclose(first * std + mean, spec["first"], rtol=1e-4, atol=1e-4 * std.max()):
                return series, np.asarray(spec["mase_scale"], dtype=np.float64)
        return np.zeros(len(first), dtype=np.int64), None

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        if "n" not in totals:  # an empty split (data.val_origins=0): nothing to score
            return {}
        n = float(totals["n"])
        out = {"loss": float(totals["loss"]) / n}
        y_scaled = totals["rows/target"].numpy()
        series, scale = self._windows(y_scaled[:, 0])
        if scale is None and len(self.meta["scaling"]) > 1:
            return out  # windows of several series that the meta does not place: no unscaling possible
        y, point = self.unscale(y_scaled, series), self.unscale(totals["rows/point"].numpy(), series)
        out["mae"] = float(np.mean([mae(a, b) for a, b in zip(y, point, strict=True)]))
        out["smape"] = float(np.mean([smape(a, b) for a, b in zip(y, point, strict=True)]))
        if scale is not None:
            ae = np.array([mae(a, b) for a, b in zip(y, point, strict=True)])
            out["mase"] = float(np.mean(np.where(scale > 0, ae / np.where(scale > 0, scale, 1.0),
                                                 np.where(ae == 0, 0.0, math.inf))))
        if "rows/quantiles" in totals:
            q = self.unscale(totals["rows/quantiles"].numpy(), series)
            out["pinball"] = forecast_pinball(y, q, self.levels)
            out["crps"] = 2.0 * out["pinball"]  # the quantile approximation (metrics.intervals.crps_from_quantiles)
            if self.band is not None:
                lo, hi = q[..., self.band[0]], q[..., self.band[1]]
                out["coverage"], out["width"] = float(np.mean((lo <= y) & (y <= hi))), float(np.mean(hi - lo))
        if "rows/raw" in totals:
            out.update(self._distribution_scores(totals["rows/raw"], totals["rows/target"], series, y))
        scaled = totals.get("rows/quantiles", totals.get("rows/raw", totals["rows/point"]))
        if self.correction is not None:
            lo, hi = (self.unscale(b.numpy(), series) for b in self.conformal_band(scaled))
            out["conformal_coverage"] = float(np.mean((lo <= y) & (y <= hi)))
            out["conformal_width"] = float(np.mean(hi - lo))
        return out

    def _distribution_scores(self, raw: torch.Tensor, y_scaled: torch.Tensor, series: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """NLL (nats per step) and CRPS in original units, and the central band's coverage and width."""
        std = np.array([self.meta["scaling"][i]["std"] for i in series])[:, None]  # (N, 1)
        dist = self.distribution(raw)
        z = y_scaled.reshape(-1).to(raw.dtype)
        step_nll = nll(dist, z).double().reshape(len(series), -1).numpy() + np.log(std)  # -log p(x) = -log p(z) + log std
        step_crps = crps(dist, z).double().reshape(len(series), -1).numpy() * std
        lo, hi = (self.unscale(b.numpy(), series) for b in self._base_band(raw))
        return {"nll": float(step_nll.mean()), "crps": float(step_crps.mean()),
                "coverage": float(np.mean((lo <= y) & (y <= hi))), "width": float(np.mean(hi - lo))}

    # ----------------------------------------------------------------- conformal calibration

    def _base_band(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The band the correction widens, (B, h) each: the quantile band, the distribution's central interval at
        ``task.coverage``, or the point forecast twice."""
        if self.dist_head is not None:
            c = self.config.coverage
            q = dist_quantiles(self.distribution(f), [(1 - c) / 2, (1 + c) / 2]).reshape(f.shape[0], self.horizon, 2)
            return q[..., 0], q[..., 1]
        if self.band is not None and f.ndim == 3:
            return f[..., self.band[0]], f[..., self.band[1]]
        point = self._point(f)
        return point, point

    def conformal_band(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lower, upper), each (B, h) in scaled units: the base band widened by the per-step correction."""
        if self.correction is None:
            raise CapabilityError("interval: this forecasting run is not calibrated (train with data.calibration_windows > 0).")
        lo, hi = self._base_band(f)
        c = torch.as_tensor(self.correction, dtype=lo.dtype, device=lo.device)
        return lo - c[:, 0], hi + c[:, 1]

    @torch.no_grad()
    def calibrate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """Per-step split-conformal (point) or CQR (quantile) corrections on the calibration windows (scaled units)."""
        ys, fs = [], []
        for x, y in data.eval_batches("calibration", device):
            fs.append(self.forecast(model, x).double().cpu()), ys.append(y.double().cpu())
        y, f = torch.cat(ys), torch.cat(fs)
        lo, hi = self._base_band(f)
        scores = cqr_scores(y.numpy(), lo.numpy(), hi.numpy())  # |y - f| when lo = hi = f
        alpha = 1.0 - self.config.coverage
        q = np.array([conformal_quantile(scores[:, j], alpha) for j in range(self.horizon)])
        if np.isinf(q).any():
            log.warning("conformal: %d calibration windows are too few for coverage %.3f; the intervals are infinite "
                        "(raise data.calibration_windows to at least %d)", len(y), self.config.coverage,
                        math.ceil(self.config.coverage / alpha - 1e-9))
        return {"correction": torch.tensor(np.stack([q, q], axis=1), dtype=torch.float64),
                "coverage": torch.tensor(self.config.coverage, dtype=torch.float64),
                "n": torch.tensor(len(y), dtype=torch.int64)}

    def load_calibration(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_calibration(state)
        self.correction = state["correction"].double().numpy()
        self.calibrated_coverage = float(state["coverage"])

    def unscale(self, values: np.ndarray, series: np.ndarray) -> np.ndarray:
        """Scaled values (N, ...) of the windows of ``series`` (N,) in their series' units."""
        scaling = self.meta["scaling"]
        shape = (-1,) + (1,) * (values.ndim - 1)
        mean = np.array([scaling[i]["mean"] for i in series]).reshape(shape)
        std = np.array([scaling[i]["std"] for i in series]).reshape(shape)
        return values * std + mean

    @torch.no_grad()
    def figures(self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Any = None) -> list[Path]:
        """The last windows' forecasts (and intervals) against the truth, in the series' units."""
        from ..report.statistics import forecast_figures

        return forecast_figures(self, model, batch, folder, split)

    # ----------------------------------------------------------------- predictions

    def _scaling(self) -> tuple[float, float]:
        scaling = self.meta["scaling"]
        if len(scaling) != 1:
            raise DataError(f"predict: this run was trained on {len(scaling)} series, whose scalings differ; "
                            "use the model's scaled output with the run's SeriesPreprocessor.unscale(forecast, series).")
        return float(scaling[0]["mean"]), float(scaling[0]["std"])

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``prediction`` (B, h) in the series' units (the median with quantiles), ``lower``/``upper`` (the
        conformal interval once calibrated, else the quantile band at ``task.coverage`` or the outermost levels)
        and ``quantiles`` (B, h, Q) when trained with quantiles."""
        mean, std = self._scaling()
        f = self.forecast(model, inputs).double()
        out = {"prediction": self._point(f) * std + mean}
        if self.head is not None:
            out["quantiles"] = f * std + mean
        if self.correction is not None:
            lo, hi = self.conformal_band(f)
            out["lower"], out["upper"] = lo * std + mean, hi * std + mean
        elif self.dist_head is not None:
            lo, hi = self._base_band(f)
            out["lower"], out["upper"] = lo * std + mean, hi * std + mean
        elif self.band is not None:
            out["lower"], out["upper"] = out["quantiles"][..., self.band[0]], out["quantiles"][..., self.band[1]]
        return out

    @torch.no_grad()
    def predict_distribution(self, model: nn.Module, inputs: Any) -> Any:
        """The predictive distribution of every step in the series' units, batch shape (B, h) (a run trained with
        ``task.distribution``)."""
        if self.dist_head is None:
            raise self.cannot("predict a distribution (train with task.distribution=normal)", name="forecasting")
        mean, std = self._scaling()
        f = self.forecast(model, inputs).double()
        return reshape_distribution(self.distribution(f, mean, std), (f.shape[0], self.horizon))


    @torch.no_grad()
    def predict_quantiles(self, model: nn.Module, inputs: Any, quantiles: Sequence[float]) -> torch.Tensor:
        """(B, h, len(quantiles)) in the series' units: trained levels exactly, levels between them interpolated
        (monotone, so still non-crossing); levels outside the trained range are an error."""
        if self.dist_head is not None:
            mean, std = self._scaling()
            f = self.forecast(model, inputs).double()
            q = dist_quantiles(self.distribution(f), list(quantiles))
            return q.reshape(f.shape[0], self.horizon, len(quantiles)) * std + mean
        if self.head is None:
            raise self.cannot("predict quantiles (train with task.quantiles=[0.05,0.5,0.95])", name="forecasting")
        outside = [t for t in quantiles if t < self.levels[0] - 1e-12 or t > self.levels[-1] + 1e-12]
        if outside:
            raise CapabilityError(f"quantiles: {outside} lie outside the trained levels {list(self.levels)}; "
                                  "retrain with task.quantiles including them.")
        mean, std = self._scaling()
        f = self.forecast(model, inputs).double()
        b = f.shape[0]
        q = interpolate_quantiles(f.reshape(b * self.horizon, -1), self.levels, list(quantiles))
        return q.reshape(b, self.horizon, len(quantiles)) * std + mean

    @torch.no_grad()
    def predict_interval(self, model: nn.Module, inputs: Any, coverage: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(lower, upper), each (B, h): the conformal interval of a calibrated run (only at its coverage); an
        uncalibrated quantile or distribution run's quantiles (1 - c)/2 and (1 + c)/2 (not conformalized)."""
        if self.correction is not None:
            if abs(coverage - float(self.calibrated_coverage)) > 1e-9:
                raise CapabilityError(
                    f"coverage: this run's intervals are conformalized for coverage {self.calibrated_coverage:g}, not "
                    f"{coverage:g}; retrain with task.coverage={coverage:g} (the correction is fitted after training).")
            out = self.predict(model, inputs)
            return out["lower"], out["upper"]
        q = self.predict_quantiles(model, inputs, [(1 - coverage) / 2, (1 + coverage) / 2])
        return q[..., 0], q[..., 1]


TASKS.register(
    "forecasting", Forecasting, ForecastConfig(), family="forecast",
    doc="multi-horizon forecasting of series windows (MAE/MSE or pinball quantiles); MASE, sMAPE, MAE in original units",
)
