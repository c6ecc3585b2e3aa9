"""Classical forecasters, refit at every rolling origin on the values before it, and their scores.

A forecaster is a function ``(history (n,), horizon h, season m, level) -> Forecast`` with the
point forecast (h,) and, where the model gives one, a central ``level`` prediction interval.

- **naive**: f_{n+j} = x_n; interval x_n +- z sigma sqrt(j), sigma the RMS of the one-step
  naive residuals (a random walk; Hyndman & Athanasopoulos, *FPP* 3rd ed., sec. 5.5, table 5.2).
- **seasonal naive**: f_{n+j} = x_{n+j-m(k+1)}, k = floor((j-1)/m); interval
  +- z sigma_m sqrt(k+1), sigma_m the RMS of the in-sample seasonal differences (same table).
- **ETS**: statsmodels' ``ETSModel`` (Hyndman et al., 2008, the innovations state-space form)
  with additive errors, an additive damped trend (Gardner & McKenzie, 1985; damping keeps long
  horizons from running away, the default FPP recommends) and, when m > 1, an additive season;
  intervals from the model's simulation-free analytic variance.
- **ARIMA**: statsmodels' ``SARIMAX`` with a fixed order: ARIMA(1,1,1) and, when m > 1, a
  seasonal (0,1,1)_m part (the "airline"-style seasonal term of Box & Jenkins, 1970); a fixed
  order keeps each refit to one likelihood fit and the comparison reproducible. Gaussian intervals.

:func:`evaluate_forecaster` runs one over the origins of a split of a
:class:`~deepatlas.data.series.SeriesData` and averages MASE, sMAPE and 90% coverage over them
(per-origin MASE uses that origin's history for its scale, as in Hyndman & Koehler, 2006).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import norm

from .data.series import SeriesData
from .errors import ConfigError, one_of
from .metrics.forecast import forecast_scores

log = logging.getLogger(__name__)


class Forecast(NamedTuple):
    """A point forecast (h,) and its central interval (h,) each, or None when the model gives none."""

    mean: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


Forecaster = Callable[[np.ndarray, int, int, float], Forecast]


def naive(history: np.ndarray, horizon: int, season: int = 1, level: float = 0.9) -> Forecast:
    """The last value, with random-walk intervals."""
    return seasonal_naive(history, horizon, 1, level)


def seasonal_naive(history: np.ndarray, horizon: int, season: int = 1, level: float = 0.9) -> Forecast:
    """The value one season back, with the seasonal random-walk intervals of FPP table 5.2."""
    x = np.asarray(history, dtype=np.float64)
    m = max(1, int(season))
    j = np.arange(1, horizon + 1)
    k = (j - 1) // m
    mean = x[len(x) - m + (j - 1) % m]
    sigma = float(np.sqrt(np.mean((x[m:] - x[:-m]) ** 2)))
    half = norm.ppf(0.5 + level / 2) * sigma * np.sqrt(k + 1)
    return Forecast(mean, mean - half, mean + half)


def _quiet_fit(fit: Callable[[], Any]) -> Any:
    """One statsmodels fit on one BLAS thread, its warnings (convergence, index frequency) kept out of the log.

    The state-space filters multiply tiny matrices: threaded BLAS only adds contention, measured
    at 8 s instead of 0.06 s for one SARIMAX fit of 48 values on a busy 2-core machine.
    """
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        return fit()


def ets(history: np.ndarray, horizon: int, season: int = 1, level: float = 0.9) -> Forecast:
    """Additive-error ETS with additive damped trend and (m > 1) additive season, refit on ``history``."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    x = pd.Series(np.asarray(history, dtype=np.float64))  # a pandas index: ETS prediction results need one
    seasonal = "add" if season > 1 else None
    model = ETSModel(x, error="add", trend="add", damped_trend=True, seasonal=seasonal,
                     seasonal_periods=season if season > 1 else None)
    fitted = _quiet_fit(lambda: model.fit(disp=False, maxiter=200))
    frame = fitted.get_prediction(start=len(x), end=len(x) + horizon - 1).summary_frame(alpha=1 - level)
    return Forecast(frame["mean"].to_numpy(), frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy())


def arima(history: np.ndarray, horizon: int, season: int = 1, level: float = 0.9) -> Forecast:
    """SARIMAX(1,1,1)(0,1,1)_m (m > 1) or ARIMA(1,1,1), refit on ``history``, Gaussian intervals."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    x = np.asarray(history, dtype=np.float64)
    seasonal_order = (0, 1, 1, season) if season > 1 else (0, 0, 0, 0)
    model = SARIMAX(x, order=(1, 1, 1), seasonal_order=seasonal_order)
    fitted = _quiet_fit(lambda: model.fit(disp=False, maxiter=200))
    pred = fitted.get_forecast(horizon)
    interval = np.asarray(pred.conf_int(alpha=1 - level))
    return Forecast(np.asarray(pred.predicted_mean), interval[:, 0], interval[:, 1])


FORECASTERS: dict[str, Forecaster] = {"naive": naive, "seasonal-naive": seasonal_naive, "ets": ets, "arima": arima}


def get_forecaster(name: str) -> Forecaster:
    if name not in FORECASTERS:
        raise ConfigError(f"forecaster: unknown {name!r} (known: {one_of(FORECASTERS)}).")
    return FORECASTERS[name]


def evaluate_forecaster(
    forecaster: Forecaster | str, data: SeriesData, split: str = "test", level: float = 0.9
) -> dict[str, float]:
    """Refit ``forecaster`` at every origin of ``split`` on the raw values before it; mean MASE, sMAPE, coverage.

    Returns ``mase``, ``smape``, ``mae``, ``rmse`` (means over origins), ``coverage90`` (the share
    of all forecast steps inside the interval) and ``width90`` (its mean width; both absent when the
    forecaster gives none; the suffix is ``level`` in percent) and ``origins``.
    """
    fn = get_forecaster(forecaster) if isinstance(forecaster, str) else forecaster
    h, m = data.options.horizon, data.season
    rows: list[dict[str, float]] = []
    covered: list[np.ndarray] = []
    widths: list[np.ndarray] = []
    for i, t in data.origins[split]:
        x = data.series[i].values
        f = fn(x[:t], h, m, level)
        rows.append(forecast_scores(x[t:t + h], f.mean, x[:t], m))
        if f.lower is not None and f.upper is not None:
            covered.append((f.lower <= x[t:t + h]) & (x[t:t + h] <= f.upper))
            widths.append(np.asarray(f.upper, dtype=np.float64) - np.asarray(f.lower, dtype=np.float64))
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("mase", "smape", "mae", "rmse")}
    if covered and len(covered) == len(rows):
        out[f"coverage{round(level * 100)}"] = float(np.mean(np.concatenate(covered)))
        out[f"width{round(level * 100)}"] = float(np.mean(np.concatenate(widths)))
    out["origins"] = float(len(rows))
    log.debug("%s on %s/%s: %s", getattr(fn, "__name__", fn), data.name, split, out)
    return out


__all__ = ["FORECASTERS", "Forecast", "arima", "ets", "evaluate_forecaster", "get_forecaster", "naive", "seasonal_naive"]
