"""Windowed time series for forecasting, evaluated on rolling origins.

One or many series (a value per time step, optional exogenous covariates) become windows:
a forecast origin t gives the input window of the ``context`` steps before t and the target of
the ``horizon`` steps from t on::

    inputs  = [z_{t-c}, ..., z_{t-1}]   (c, 1 + k): the scaled value, then the k scaled covariates
    targets = [z_t, ..., z_{t+h-1}]     (h,): the scaled value

Rolling-origin evaluation (Tashman, 2000; Hyndman & Athanasopoulos, *Forecasting: Principles
and Practice*, 3rd ed., sec. 5.10, "time series cross-validation"): per series of length T the
last test origin is T - h, the ``test_origins`` test origins lie ``stride`` (default h) apart
before it, the ``val_origins`` validation origins lie ``stride`` apart before the first test
origin, and the training windows are every origin whose whole target ends at or before the first
validation origin v. The scaling z = (x - mean) / std is fitted per series on x_1..x_{v-1} only,
so no value at or after v reaches the training batches or the scaling. With no evaluation origin
(``test_origins=0 val_origins=0``: a forecaster fitted on the whole history, as the estimator does)
v is the series' length.

``calibration_windows`` = K > 0 holds the K origins v - h - K + 1 .. v - h (stride 1, their targets
ending by v) out of training for conformal forecast intervals, and the training windows then end
before the first calibration origin, so no calibration target was ever a training target either.

Only past covariates enter the input window (their values at the forecast steps are not
used: a forecaster trained here never needs the future of a covariate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Optional

import numpy as np
import torch

from ..errors import DataError
from ..schema import option
from .bundle import PairBatching, TensorPairs
from .preprocess import KINDS


@dataclass(frozen=True)
class SeriesOptions:
    """Options of every series dataset (built-in or your own)."""

    context: int = option(24, "input window: steps before the forecast origin the model sees", low=1)
    horizon: int = option(12, "steps forecast from each origin", low=1)
    test_origins: int = option(4, "the last this many forecast origins of each series are the test split", low=0)
    val_origins: int = option(2, "forecast origins before the test ones that are the validation split", low=0)
    calibration_windows: int = option(
        0, "windows (stride 1) just before the validation origins held out from training for conformal intervals", low=0)
    stride: Optional[int] = option(None, "steps between successive evaluation origins (null: data.horizon)", low=1)
    season: Optional[int] = option(None, "seasonal period (12 for monthly data; null: the dataset's own, 1 when unknown)", low=1)


@dataclass(frozen=True)
class SeriesColumnOptions(SeriesOptions):
    """Your own series in long format (one row per series and time step): which column is what."""

    time: Optional[str] = option(None, "the time column (rows are sorted by it; null: the rows' order)")
    value: Optional[str] = option(None, "the column to forecast")
    series_id: Optional[str] = option(None, "the column naming the series of each row (null: one series)")
    covariates: tuple[str, ...] = option((), "exogenous numeric columns fed to the input window (their past values)")


@dataclass(frozen=True)
class SeriesFileOptions(SeriesColumnOptions):
    """Your own series: a CSV (or Parquet) file in long format."""

    path: Optional[str] = option(None, "a .csv, .tsv or .parquet file with a header row, one row per (series, time)")


@dataclass(frozen=True)
class SeriesFrameOptions(SeriesColumnOptions):
    """Your own series: a pandas DataFrame of this process in long format."""

    frame: Optional[str] = option(None, "the key deepatlas.data.register_frame(df) returned")


class Series(NamedTuple):
    """One series: its id, values (T,), covariates (T, k) and time stamps (T,)."""

    id: str
    values: np.ndarray
    covariates: np.ndarray
    times: np.ndarray


def evaluation_origins(length: int, horizon: int, n_test: int, n_val: int, stride: int) -> tuple[list[int], list[int]]:
    """(validation origins, test origins) of a series of ``length``: the last evaluation origin is length - horizon,
    the test origins are the last ``n_test``, the validation origins the ``n_val`` before them, ``stride`` apart."""
    last = length - horizon
    origins = [last - i * stride for i in reversed(range(n_val + n_test))]
    return origins[:n_val], origins[n_val:]


def _fit_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and stds (a zero std becomes 1, so a constant column stays finite)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class SeriesPreprocessor:
    """Raw recent history -> scaled input windows (B, context, 1 + k), with each series' fitted scaling.

    Accepts an array of raw values, (T,) or (B, T) for a series without covariates, or
    (B, T, 1 + k) values then covariates, T >= context (the last ``context`` steps are used);
    or a mapping ``{"series": id, "values": array}`` to use that series' scaling (default: the first).
    :meth:`unscale` turns the model's scaled forecasts back into the series' units.
    """

    context: int
    ids: tuple[str, ...]
    mean: tuple[tuple[float, ...], ...]  # per series: the value's mean, then each covariate's
    std: tuple[tuple[float, ...], ...]
    kind: ClassVar[str] = "series"
    tokenizer: ClassVar[None] = None

    def _index(self, series: Any) -> int:
        if series is None:
            return 0
        if str(series) not in self.ids:
            raise DataError(f"series {series!r}: not one the model was trained on ({', '.join(self.ids[:10])}).")
        return self.ids.index(str(series))

    def __call__(self, raw: Any) -> torch.Tensor:
        series = None
        if isinstance(raw, Mapping):
            series, raw = raw.get("series"), raw.get("values")
        i, k = self._index(series), len(self.mean[0])
        x = np.asarray(raw, dtype=np.float64)
        x = x.reshape(1, -1, 1) if x.ndim == 1 else x[..., None] if x.ndim == 2 else x
        if x.ndim != 3 or x.shape[2] != k or x.shape[1] < self.context:
            raise DataError(f"series inputs: expected (B, T >= {self.context}, {k}) raw values (or (T,) / (B, T) without covariates), got {np.shape(raw)}.")
        z = (x[:, -self.context:] - np.array(self.mean[i])) / np.array(self.std[i])
        return torch.tensor(z, dtype=torch.float32)

    def unscale(self, forecast: Any, series: Any = None) -> np.ndarray:
        """Scaled forecasts of series ``series`` (default: the first) in the series' own units."""
        i = self._index(series)
        return np.asarray(forecast, dtype=np.float64) * self.std[i][0] + self.mean[i][0]

    def to_json(self) -> dict[str, Any]:
        return {"context": self.context, "ids": list(self.ids), "mean": [list(m) for m in self.mean], "std": [list(s) for s in self.std]}

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> SeriesPreprocessor:
        return cls(int(spec["context"]), tuple(spec["ids"]), tuple(tuple(map(float, m)) for m in spec["mean"]),
                   tuple(tuple(map(float, s)) for s in spec["std"]))


KINDS[SeriesPreprocessor.kind] = SeriesPreprocessor


class SeriesData(PairBatching):
    """Batches ``(inputs (B, context, 1 + k), targets (B, horizon))`` of scaled windows.

    ``series`` keeps the raw series, ``origins[split]`` the (series index, origin) of every
    window of a split in batch order, for baselines and for turning scaled forecasts back.
    """

    def __init__(self, name: str, series: list[Series], config: Any, default_season: int = 1) -> None:
        opts: SeriesOptions = config.options
        self.name, self.config, self.options = name, config, opts
        self.series = series
        self.season = int(opts.season or default_season)
        stride = opts.stride or opts.horizon
        self.origins: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": [], "calibration": []}
        self.scaling: list[dict[str, Any]] = []
        for i, s in enumerate(series):
            self._add_series(i, s, stride)
        if not self.origins["train"]:
            raise DataError(f"{name}: no training window fits (lower data.context, data.horizon or data.test_origins).")
        if config.limit is not None:
            self.origins["train"] = self.origins["train"][-config.limit:]
        if not self.origins["calibration"]:
            del self.origins["calibration"]
        self.splits = {k: self._windows(v) for k, v in self.origins.items()}
        self.meta = {
            "context": opts.context, "horizon": opts.horizon, "season": self.season,
            "input_size": 1 + series[0].covariates.shape[1], "num_outputs": opts.horizon,
            "series": [s.id for s in series], "scaling": self.scaling, "calibration_windows": opts.calibration_windows,
            "sizes": {k: len(v) for k, v in self.splits.items()},
            "windows": {k: self._window_meta(k) for k in ("val", "test", "calibration") if k in self.origins},
        }

    def _add_series(self, i: int, s: Series, stride: int) -> None:
        opts = self.options
        c, h = opts.context, opts.horizon
        val, test = evaluation_origins(len(s.values), h, opts.test_origins, opts.val_origins, stride)
        first_eval = (val or test or [len(s.values)])[0]
        k = opts.calibration_windows
        # training targets end before the first calibration origin (without calibration: before first_eval)
        train_end = first_eval - h - k + 1 if k else first_eval
        if train_end - h < c:
            raise DataError(
                f"{self.name}: series {s.id!r} has {len(s.values)} steps, too few for context {c}, horizon {h}, "
                f"{k} calibration windows, {opts.val_origins} validation and {opts.test_origins} test origins (lower one of them)."
            )
        if not np.all(np.isfinite(s.values)) or not np.all(np.isfinite(s.covariates)):
            raise DataError(f"{self.name}: series {s.id!r} has missing or infinite values (fill them first).")
        fit = np.column_stack([s.values, s.covariates])[:first_eval]  # strictly before the first evaluation origin
        mean, std = _fit_scale(fit)
        self.scaling.append({"id": s.id, "mean": float(mean[0]), "std": float(std[0]),
                             "covariate_mean": mean[1:].tolist(), "covariate_std": std[1:].tolist(), "fit_end": int(first_eval)})
        self.origins["train"] += [(i, t) for t in range(c, train_end - h + 1)]
        self.origins["calibration"] += [(i, t) for t in range(first_eval - h - k + 1, first_eval - h + 1)] if k else []
        self.origins["val"] += [(i, t) for t in val]
        self.origins["test"] += [(i, t) for t in test]

    def _window_meta(self, split: str) -> dict[str, list[Any]]:
        """Per evaluation window, in batch order: its series, origin, first outcome (raw) and MASE scale.

        The scale is the in-sample seasonal-naive MAE of the whole history before the origin (the
        denominator :func:`deepatlas.forecast_baselines.evaluate_forecaster` uses), which the input
        window alone does not determine; a task reads it here to report the same MASE.
        """
        from ..metrics.forecast import seasonal_naive_scale

        rows = self.origins[split]
        return {"series": [i for i, _ in rows], "origin": [t for _, t in rows],
                "first": [float(self.series[i].values[t]) for i, t in rows],
                "mase_scale": [seasonal_naive_scale(self.series[i].values[:t], self.season) for i, t in rows]}

    def preprocessor(self) -> SeriesPreprocessor:
        """Raw history -> the scaled input window, with the scaling fitted before the first evaluation origin."""
        sc = self.scaling
        return SeriesPreprocessor(self.options.context, tuple(s.id for s in self.series),
                                  tuple((c["mean"], *c["covariate_mean"]) for c in sc), tuple((c["std"], *c["covariate_std"]) for c in sc))

    def scaled(self, i: int) -> np.ndarray:
        """Series ``i`` as (T, 1 + k) scaled values and covariates."""
        s, sc = self.series[i], self.scaling[i]
        mean = np.array([sc["mean"], *sc["covariate_mean"]])
        std = np.array([sc["std"], *sc["covariate_std"]])
        return (np.column_stack([s.values, s.covariates]) - mean) / std

    def _windows(self, origins: list[tuple[int, int]]) -> TensorPairs:
        c, h = self.options.context, self.options.horizon
        k = 1 + self.series[0].covariates.shape[1]
        inputs, targets = np.zeros((len(origins), c, k)), np.zeros((len(origins), h))
        cache: dict[int, np.ndarray] = {}
        for j, (i, t) in enumerate(origins):
            z = cache.setdefault(i, self.scaled(i))
            inputs[j], targets[j] = z[t - c:t], z[t:t + h, 0]
        return TensorPairs(torch.tensor(inputs, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32), ("<f4", "<f4"))

    def unscale(self, split: str, forecasts: Any) -> np.ndarray:
        """Scaled forecasts (N, ...) of the windows of ``split`` back in the units of their series."""
        f = np.asarray(forecasts, dtype=np.float64)
        mean = np.array([self.scaling[i]["mean"] for i, _ in self.origins[split]])
        std = np.array([self.scaling[i]["std"] for i, _ in self.origins[split]])
        shape = (-1,) + (1,) * (f.ndim - 1)
        return f * std.reshape(shape) + mean.reshape(shape)


# --------------------------------------------------------------------------- frames -> series


def series_from_frame(
    frame: Any, value: str, time: str | None = None, series_id: str | None = None, covariates: tuple[str, ...] = (), where: str = "data"
) -> list[Series]:
    """Long-format rows (one per series and time step) -> series sorted by time, in order of first appearance."""
    missing = [c for c in (value, time, series_id, *covariates) if c is not None and c not in frame.columns]
    if missing:
        from .images import show_columns

        raise DataError(f"{where}: no column {missing[0]!r} (columns: {show_columns(list(map(str, frame.columns)))}).")
    groups = [("0", frame)] if series_id is None else [(str(k), g) for k, g in frame.groupby(series_id, sort=False)]
    out = []
    for key, g in groups:
        if time is not None:
            g = g.sort_values(time, kind="stable")
        times = g[time].to_numpy() if time is not None else np.arange(len(g))
        cov = g[list(covariates)].to_numpy(dtype=np.float64) if covariates else np.zeros((len(g), 0))
        out.append(Series(key, g[value].to_numpy(dtype=np.float64), cov, times))
    return out


__all__ = ["Series", "SeriesColumnOptions", "SeriesData", "SeriesFileOptions", "SeriesFrameOptions", "SeriesOptions", "SeriesPreprocessor", "evaluation_origins", "series_from_frame"]
