"""Quantile regression with non-crossing quantiles and a conformalized interval (CQR).

The network outputs one value z_j per level tau_1 < ... < tau_K (``task.quantiles``). In units of
the training target's standard deviation s around its mean m, the anchor level a (the median when
0.5 is a level, else the first) is u_a = z_a + b_a and the others are built outwards by positive
steps::

    d_j = softplus(z_j + b_j) + delta
    u_j = u_{j-1} + d_j   (j > a),      u_j = u_{j+1} - d_j   (j < a)
    q_j(x) = m + s * u_j

so the quantiles never cross, whatever the weights: neighbours are at least delta = 1e-3 standard
deviations apart (a floor so that a step softplus underflows to 0 in float32 still separates them).
The offsets b are chosen so that a fresh network (z near 0) predicts the normal quantiles of the
marginal: b_a = Phi^-1(tau_a) and softplus(b_j) + delta = |Phi^-1(tau_j) - Phi^-1(tau_{j-1 or j+1})|.

The loss is the pinball loss averaged over levels (Koenker & Bassett, 1978) in standardised
units, rho_tau(e) = e (tau - 1[e < 0]) = max(tau e, (tau - 1) e) with e = (y - m)/s - u_j. (The
course slide's max(tau e, (1 - tau) e) has a sign error; see :mod:`deepatlas.metrics.intervals`.)

After training, ``calibrate`` conformalizes the band of levels (1 - c)/2 and (1 + c)/2 for the
nominal coverage c = ``task.coverage`` (Romano, Patterson & Candes, 2019; see
:mod:`deepatlas.conformal`). When those levels are not trained it uses the outermost pair (the
guarantee holds for any band; only the width suffers). The calibration rows are the bundle's
``calibration`` split (``data.calibration_fraction`` > 0), which no training step nor checkpoint
selection saw; without one it falls back to ``val``, which selected the best checkpoint, so the
coverage is then slightly optimistic. The correction (in target units) is saved with the run and
with an export.

Validation during training reports the raw band's coverage and width; the conformalized band's
(``conformal_coverage``, ``conformal_width``) appear once the run is calibrated: in the test
evaluation after training and in ``deepatlas.evaluate(run, split)``. ``predict_quantiles`` gives
the trained levels exactly and levels between them by linear interpolation (monotone, so still
non-crossing); levels outside the trained range are an error. ``predict_interval`` answers only at
the calibrated coverage (another coverage needs another correction: retrain with ``task.coverage``).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..conformal import cqr_correction
from ..errors import CapabilityError, ConfigError, DataError
from ..metrics.intervals import pinball
from ..registry import TASKS
from ..schema import option
from .base import StepOutput, Task

log = logging.getLogger(__name__)

#: the smallest distance between neighbouring quantiles, in target standard deviations
MIN_GAP = 1e-3


@dataclass(frozen=True)
class QuantileConfig:
    quantiles: tuple[float, ...] = option((0.05, 0.5, 0.95), "quantile levels the network predicts (increasing, in (0, 1))",
                                          low=0.0, high=1.0)
    coverage: float = option(0.9, "nominal coverage of the conformalized interval fitted after training", low=0.0, high=1.0)
    correction: Literal["symmetric", "asymmetric"] = option(
        "symmetric", "CQR correction: one Q on both ends (Romano et al. eq. 7), or each end at alpha/2 (their Theorem 2)")


def _normal_icdf(p: Sequence[float]) -> torch.Tensor:
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(list(p), dtype=torch.float64))


class QuantileHead(nn.Module):
    """Raw outputs z (B, K) -> non-crossing quantiles (B, K) in target units (see the module docstring)."""

    def __init__(self, levels: Sequence[float], mean: float, std: float) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.anchor = self.levels.index(0.5) if 0.5 in self.levels else 0
        z = _normal_icdf(self.levels)
        gaps = torch.zeros_like(z)
        gaps[self.anchor + 1:] = z[self.anchor + 1:] - z[self.anchor:-1]
        gaps[:self.anchor] = z[1:self.anchor + 1] - z[:self.anchor]
        offsets = torch.log(torch.expm1((gaps - MIN_GAP).clamp_min(1e-6)))  # softplus^-1
        offsets[self.anchor] = z[self.anchor]
        self.offsets, self.mean, self.std = offsets.float(), float(mean), float(std)

    def standardized(self, z: torch.Tensor) -> torch.Tensor:
        """u (B, K): quantiles in units of the training target's std around its mean."""
        z = z.float() + self.offsets.to(z.device)
        a = self.anchor
        steps = F.softplus(z) + MIN_GAP
        up = z[:, a:a + 1] + torch.cumsum(steps[:, a + 1:], dim=1)  # (B, K - a - 1)
        down = z[:, a:a + 1] - torch.cumsum(steps[:, :a].flip(1), dim=1).flip(1)  # (B, a)
        return torch.cat([down, z[:, a:a + 1], up], dim=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * self.standardized(z)


def interpolate_quantiles(q: torch.Tensor, levels: Sequence[float], wanted: Sequence[float]) -> torch.Tensor:
    """Quantiles (B, len(wanted)) linearly interpolated between trained ``levels`` (monotone in the level)."""
    known = torch.tensor(list(levels), dtype=q.dtype, device=q.device)
    t = torch.tensor(list(wanted), dtype=q.dtype, device=q.device).clamp(known[0], known[-1])
    hi = torch.searchsorted(known, t).clamp(1, len(known) - 1) if len(known) > 1 else torch.zeros_like(t, dtype=torch.long)
    lo = (hi - 1).clamp_min(0)
    width = (known[hi] - known[lo]).clamp_min(1e-12)
    w = ((t - known[lo]) / width).clamp(0, 1)
    return q[:, lo] * (1 - w) + q[:, hi] * w


class QuantileRegression(Task):
    monitor = ("pinball", "min")
    low_precision_ok = False  # float32 likelihoods whatever the speed (Task.low_precision_ok)
    directions: ClassVar[Mapping[str, str]] = {
        "loss": "min", "pinball": "min", "crps": "min", "rmse": "min", "mae": "min", "coverage": "max", "width": "min",
        "conformal_coverage": "max", "conformal_width": "min",
    }
    capabilities = frozenset({"predict", "quantiles", "interval"})
    predicts = "values"
    data_kind = "tabular"
    calibrates = True

    def __init__(self, config: QuantileConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        levels = tuple(float(t) for t in config.quantiles)
        if not levels or any(not 0.0 < t < 1.0 for t in levels) or any(b <= a for a, b in itertools.pairwise(levels)):
            raise ConfigError(f"task.quantiles: {list(levels)} must be increasing levels strictly between 0 and 1, "
                              "e.g. [0.05, 0.5, 0.95].")
        if not 0.0 < config.coverage < 1.0:
            raise ConfigError(f"task.coverage: must lie strictly between 0 and 1, got {config.coverage}.")
        if meta.get("target_type", "real") != "real":
            raise DataError(f"data: quantile regression needs a real target, this one is {meta.get('target_type')!r} "
                            "(set data.target_type=real, or use task.name=classification / a survival task).")
        self.levels = levels
        self.head = QuantileHead(levels, float(meta.get("target_mean", 0.0)), float(meta.get("target_std", 1.0)))
        self.band = self._band(levels, config.coverage)
        self.correction: tuple[float, float] | None = None
        self.calibrated_coverage: float | None = None

    @staticmethod
    def _band(levels: tuple[float, ...], coverage: float) -> tuple[int, int]:
        """Indices of the levels (1 - c)/2 and (1 + c)/2, or of the outermost pair when those are not trained."""
        lo, hi = (1 - coverage) / 2, (1 + coverage) / 2
        near = [i for i, t in enumerate(levels) if abs(t - lo) < 1e-9], [i for i, t in enumerate(levels) if abs(t - hi) < 1e-9]
        if near[0] and near[1]:
            return near[0][0], near[1][0]
        if len(levels) < 2:
            raise ConfigError(f"task.quantiles: an interval needs at least two levels, got {list(levels)}.")
        log.info("quantile levels %.3g and %.3g are not trained; conformalizing the outermost band [%g, %g]",
                 lo, hi, levels[0], levels[-1])
        return 0, len(levels) - 1

    def model_meta(self) -> dict[str, Any]:
        return {"num_outputs": len(self.levels)}

    def quantiles(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        """(B, K) non-crossing quantiles in target units."""
        return self.head(model(inputs))

    # ----------------------------------------------------------------- optimisation and validation

    def _loss_rows(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        u = self.head.standardized(model(x))  # (B, K)
        target = ((y.float() - self.head.mean) / self.head.std)[:, None]
        tau = torch.tensor(self.levels, dtype=u.dtype, device=u.device)
        return pinball(target, u, tau).mean(dim=1), u  # (B,), (B, K)

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        rows, _ = self._loss_rows(model, batch)
        loss = rows.mean()
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        rows, u = self._loss_rows(model, batch)
        y = batch[1].double()
        q = (self.head.mean + self.head.std * u.double())
        median = interpolate_quantiles(q, self.levels, [0.5])[:, 0]
        lo, hi = q[:, self.band[0]], q[:, self.band[1]]
        stats = {
            "n": torch.tensor(float(len(y)), dtype=torch.float64), "loss": rows.double().sum(),
            "pinball": rows.double().sum() * self.head.std, "se": ((y - median) ** 2).sum(), "ae": (y - median).abs().sum(),
            "covered": ((lo <= y) & (y <= hi)).double().sum(), "width": (hi - lo).sum(),
        }
        if self.correction is not None:
            clo, chi = lo - self.correction[0], hi + self.correction[1]
            stats["conformal_covered"] = ((clo <= y) & (y <= chi)).double().sum()
            stats["conformal_width"] = (chi - clo).sum()
        return stats

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        n = float(totals["n"])
        out = {"loss": float(totals["loss"]) / n, "pinball": float(totals["pinball"]) / n,
               "rmse": math.sqrt(float(totals["se"]) / n), "mae": float(totals["ae"]) / n,
               "coverage": float(totals["covered"]) / n, "width": float(totals["width"]) / n}
        out["crps"] = 2 * out["pinball"]  # 2 * mean pinball over the levels (metrics.intervals.crps_from_quantiles)
        if "conformal_covered" in totals:
            out["conformal_coverage"] = float(totals["conformal_covered"]) / n
            out["conformal_width"] = float(totals["conformal_width"]) / n
        return out

    # ----------------------------------------------------------------- calibration (CQR)

    def calibrate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """The CQR correction on the calibration split (else val: see the module docstring)."""
        split = "calibration" if (data.meta.get("sizes") or {}).get("calibration") else "val"
        if split == "val":
            log.warning("no calibration split (data.calibration_fraction is 0): conformalizing on val, which chose "
                        "the checkpoint, so the coverage is slightly optimistic")
        ys, los, his = [], [], []
        for x, y in data.eval_batches(split, device):
            q = self.quantiles(model, x).double()
            ys.append(y.double().cpu()), los.append(q[:, self.band[0]].cpu()), his.append(q[:, self.band[1]].cpu())
        if not ys:
            raise DataError(f"data: the {split} split is empty; set data.calibration_fraction (e.g. 0.25) to conformalize.")
        y, lo, hi = torch.cat(ys).numpy(), torch.cat(los).numpy(), torch.cat(his).numpy()
        alpha = 1 - self.config.coverage
        q_lo, q_hi = cqr_correction(y, lo, hi, alpha, symmetric=self.config.correction == "symmetric")
        if math.isinf(q_lo) or math.isinf(q_hi):
            log.warning("conformal: %d %s rows are too few for coverage %.3f; the intervals are infinite", len(y), split,
                        self.config.coverage)
        return {"correction": torch.tensor([q_lo, q_hi], dtype=torch.float64),
                "coverage": torch.tensor(self.config.coverage, dtype=torch.float64),
                "levels": torch.tensor([self.levels[self.band[0]], self.levels[self.band[1]]], dtype=torch.float64),
                "n": torch.tensor(len(y), dtype=torch.int64)}

    def load_calibration(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_calibration(state)
        c = state["correction"].double().tolist()
        self.correction = (c[0], c[1])
        self.calibrated_coverage = float(state["coverage"])

    # ----------------------------------------------------------------- predictions

    @torch.no_grad()
    def figures(self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Any = None) -> list[Path]:
        """Observed against predicted, and each row's interval (the first evaluation batch of ``split``)."""
        from ..report.statistics import interval_figures

        return interval_figures(self, model, batch, folder, split, "conformalized interval" if self.correction is not None else "quantile band")

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``prediction`` (the median, interpolated when 0.5 is not a level), ``lower``/``upper`` (the
        conformalized interval once calibrated, else the raw band) and ``quantiles`` (B, K)."""
        q = self.quantiles(model, inputs).double()
        lo, hi = q[:, self.band[0]], q[:, self.band[1]]
        if self.correction is not None:
            lo, hi = lo - self.correction[0], hi + self.correction[1]
        return {"prediction": interpolate_quantiles(q, self.levels, [0.5])[:, 0], "lower": lo, "upper": hi, "quantiles": q}

    @torch.no_grad()
    def predict_quantiles(self, model: nn.Module, inputs: Any, quantiles: Sequence[float]) -> torch.Tensor:
        """Trained levels exactly; levels between them by linear interpolation (monotone, so still non-crossing);
        levels outside [tau_1, tau_K] are an error naming the trained levels."""
        outside = [t for t in quantiles if t < self.levels[0] - 1e-12 or t > self.levels[-1] + 1e-12]
        if outside:
            raise CapabilityError(
                f"quantiles: {outside} lie outside the trained levels {list(self.levels)} (levels in between are "
                f"interpolated); train with task.quantiles including them.")
        return interpolate_quantiles(self.quantiles(model, inputs).double(), self.levels, quantiles)

    @torch.no_grad()
    def predict_interval(self, model: nn.Module, inputs: Any, coverage: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The CQR interval; only at the coverage the run was calibrated for."""
        if self.correction is None:
            raise CapabilityError("interval: this quantile-regression run is not calibrated (training did not finish).")
        if abs(coverage - self.calibrated_coverage) > 1e-9:
            raise CapabilityError(
                f"coverage: this run's intervals are conformalized for coverage {self.calibrated_coverage:g}, not "
                f"{coverage:g}; retrain with task.coverage={coverage:g} (the correction is fitted after training), or "
                "apply deepatlas.conformal.cqr_correction to predict_quantiles on calibration rows of your own.")
        out = self.predict(model, inputs)
        return out["lower"], out["upper"]


TASKS.register(
    "quantile-regression", QuantileRegression, QuantileConfig(), family="statistics",
    doc="non-crossing quantile regression (pinball loss) with a conformalized interval (CQR)",
)
