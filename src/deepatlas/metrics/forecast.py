"""Scores of point and interval forecasts, as pure functions on numpy arrays.

For one forecast origin with outcomes y_1..y_h, forecasts f_1..f_h and the in-sample history
x_1..x_n seen before the origin:

- **MAE** = mean |y_i - f_i|, **RMSE** = sqrt(mean (y_i - f_i)^2).
- **MASE** (Hyndman & Koehler, 2006, eq. 10 with the seasonal scaling of their sec. 3.4, as in the
  M4 competition, Makridakis et al., 2020)::

      MASE = mean_i |y_i - f_i| / ( 1/(n - m) * sum_{t=m+1..n} |x_t - x_{t-m}| )

  the forecast's MAE over the in-sample MAE of the seasonal-naive forecast with period m
  (m = 1: the naive forecast). Below 1: better than seasonal naive was in sample.
- **sMAPE** (Makridakis, 1993; the M4 definition), in percent, 0..200::

      sMAPE = 200/h * sum_i |y_i - f_i| / (|y_i| + |f_i|)

  (terms with y_i = f_i = 0 count as 0). Not scikit-learn's ``mean_absolute_percentage_error``,
  which divides by |y_i| alone and is a fraction, not a percent.
- **Pinball loss** over quantile levels and **interval coverage**: the helpers of
  :mod:`deepatlas.metrics.intervals` (rho_tau(e) = e (tau - 1[e < 0]), Koenker & Bassett, 1978).

Across origins (or series) the per-origin MASE and sMAPE are averaged, as in M4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .intervals import coverage, mean_pinball


def _pair(y: Any, f: Any) -> tuple[np.ndarray, np.ndarray]:
    y, f = np.asarray(y, dtype=np.float64), np.asarray(f, dtype=np.float64)
    if y.shape != f.shape:
        raise DataError(f"forecast metrics: outcomes {y.shape} and forecasts {f.shape} differ in shape.")
    return y, f


def mae(y: Any, f: Any) -> float:
    """Mean absolute error."""
    y, f = _pair(y, f)
    return float(np.mean(np.abs(y - f)))


def rmse(y: Any, f: Any) -> float:
    """Root mean squared error."""
    y, f = _pair(y, f)
    return float(np.sqrt(np.mean((y - f) ** 2)))


def smape(y: Any, f: Any) -> float:
    """Symmetric MAPE in percent (M4 definition, 0..200); 0/0 terms count as 0."""
    y, f = _pair(y, f)
    num, den = np.abs(y - f), np.abs(y) + np.abs(f)
    ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(200.0 * np.mean(ratio))


def seasonal_naive_scale(history: Any, season: int = 1) -> float:
    """The in-sample MAE of the seasonal-naive forecast with period ``season``: the MASE denominator."""
    x = np.asarray(history, dtype=np.float64)
    m = max(1, int(season))
    if len(x) <= m:
        raise DataError(f"MASE: the history has {len(x)} values, it needs more than the season ({m}).")
    return float(np.mean(np.abs(x[m:] - x[:-m])))


def mase(y: Any, f: Any, history: Any, season: int = 1) -> float:
    """Mean absolute scaled error (Hyndman & Koehler, 2006): MAE / in-sample seasonal-naive MAE.

    A constant history (scale 0) gives inf when the forecast errs, else 0 (nan would hide it).
    """
    scale = seasonal_naive_scale(history, season)
    err = mae(y, f)
    if scale == 0.0:
        return 0.0 if err == 0.0 else float("inf")
    return err / scale


def forecast_pinball(y: Any, quantiles: Any, levels: Sequence[float]) -> float:
    """Mean pinball loss of quantile forecasts ``quantiles`` (..., K) at ``levels`` (K,) for outcomes (...) (e.g. (h,) or (origins, h))."""
    return mean_pinball(np.asarray(y, dtype=np.float64).ravel(), np.asarray(quantiles, dtype=np.float64).reshape(-1, len(levels)), levels)


def forecast_scores(
    y: Any, f: Any, history: Any, season: int = 1, lower: Any = None, upper: Any = None
) -> dict[str, float]:
    """MAE, RMSE, sMAPE, MASE of one origin's forecast, and coverage of its interval when given."""
    scores = {"mae": mae(y, f), "rmse": rmse(y, f), "smape": smape(y, f), "mase": mase(y, f, history, season)}
    if lower is not None and upper is not None:
        scores["coverage"] = coverage(np.ravel(y), np.ravel(lower), np.ravel(upper))
    return scores


__all__ = ["forecast_pinball", "forecast_scores", "mae", "mase", "rmse", "seasonal_naive_scale", "smape"]
