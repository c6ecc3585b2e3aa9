"""Classical forecasters on rolling origins: hand values, refits on the past only, statsmodels agreement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from deepatlas.config import DataConfig
from deepatlas.data.series import Series, SeriesData, SeriesOptions
from deepatlas.errors import ConfigError
from deepatlas.forecast_baselines import (
    Forecast,
    arima,
    ets,
    evaluate_forecaster,
    naive,
    seasonal_naive,
)
from deepatlas.metrics.forecast import mase, smape


def _data(x: np.ndarray, season: int = 1, **kw) -> SeriesData:
    opts = SeriesOptions(**{"context": 8, "horizon": 4, "test_origins": 3, "val_origins": 1, "season": season, **kw})
    series = Series("s", np.asarray(x, dtype=np.float64), np.zeros((len(x), 0)), np.arange(len(x)))
    return SeriesData("toy", [series], DataConfig(name="series-csv", options=opts))


def test_naive_hand_values():
    x = np.array([1.0, 3.0, 2.0, 4.0])  # one-step differences 2, -1, 2: sigma = sqrt(3)
    f = naive(x, 3, 1, 0.9)
    np.testing.assert_allclose(f.mean, [4.0, 4.0, 4.0])
    half = norm.ppf(0.95) * np.sqrt(3.0) * np.sqrt([1.0, 2.0, 3.0])
    np.testing.assert_allclose(f.upper - f.mean, half)
    np.testing.assert_allclose(f.mean - f.lower, half)


def test_seasonal_naive_hand_values():
    x = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])  # m = 3: differences 9, 18, 27
    f = seasonal_naive(x, 5, 3, 0.8)
    np.testing.assert_allclose(f.mean, [10.0, 20.0, 30.0, 10.0, 20.0])
    sigma = np.sqrt((81 + 324 + 729) / 3)
    k = np.array([0, 0, 0, 1, 1])
    np.testing.assert_allclose(f.upper - f.mean, norm.ppf(0.9) * sigma * np.sqrt(k + 1))


def test_exactly_seasonal_series_is_forecast_exactly():
    x = np.tile([1.0, 5.0, 2.0, 8.0], 12) + 10.0
    data = _data(x, season=4)
    scores = evaluate_forecaster("seasonal-naive", data)
    assert scores["mase"] == 0.0 and scores["smape"] == 0.0 and scores["coverage90"] == 1.0 and scores["origins"] == 3.0
    assert scores["width90"] == 0.0  # no residual in the history: a zero-width interval
    for fn in (ets, arima):
        f = fn(x[:40], 8, 4, 0.9)
        np.testing.assert_allclose(f.mean, x[40:48], atol=0.2)
        assert np.all(f.lower <= f.mean) and np.all(f.mean <= f.upper)


def test_refit_on_the_past_only_and_scores_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60).cumsum() + 50
    data = _data(x, season=1)
    seen: list[int] = []

    def drift(history: np.ndarray, h: int, m: int, level: float) -> Forecast:
        seen.append(len(history))
        return Forecast(history[-1] + np.arange(1, h + 1) * (history[-1] - history[0]) / (len(history) - 1))

    scores = evaluate_forecaster(drift, data)
    origins = [t for _, t in data.origins["test"]]
    assert seen == origins == [48, 52, 56]
    expected_mase = np.mean([mase(x[t:t + 4], drift(x[:t], 4, 1, 0.9).mean, x[:t], 1) for t in origins])
    expected_smape = np.mean([smape(x[t:t + 4], drift(x[:t], 4, 1, 0.9).mean) for t in origins])
    assert scores["mase"] == pytest.approx(expected_mase) and scores["smape"] == pytest.approx(expected_smape)
    assert "coverage90" not in scores and "width90" not in scores  # this forecaster gives no interval


@pytest.mark.parametrize("fn", [naive, seasonal_naive, ets, arima])
def test_forecast_at_an_origin_ignores_later_values(fn):
    rng = np.random.default_rng(3)
    x = np.sin(np.arange(60) * 2 * np.pi / 6) * 3 + rng.normal(size=60) * 0.3 + 20
    y = x.copy()
    y[50:] += 100.0
    a, b = fn(x[:50], 6, 6, 0.9), fn(y[:50], 6, 6, 0.9)
    np.testing.assert_array_equal(a.mean, b.mean)


def test_statsmodels_models_match_a_direct_fit():
    """Our ARIMA/ETS are statsmodels' own fits with the documented orders (a guard against drift in the options)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    rng = np.random.default_rng(4)
    x = np.sin(np.arange(48) * 2 * np.pi / 4) + np.arange(48) * 0.1 + rng.normal(size=48) * 0.2
    ours = arima(x, 5, 4, 0.9)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # threaded BLAS makes this tiny fit 100x slower on a busy machine
        ref = SARIMAX(x, order=(1, 1, 1), seasonal_order=(0, 1, 1, 4)).fit(disp=False, maxiter=200).get_forecast(5)
    np.testing.assert_allclose(ours.mean, ref.predicted_mean, rtol=1e-6)
    np.testing.assert_allclose(ours.lower, ref.conf_int(alpha=0.1)[:, 0], rtol=1e-6)
    import pandas as pd

    fit = ETSModel(pd.Series(x), error="add", trend="add", damped_trend=True, seasonal="add", seasonal_periods=4).fit(disp=False, maxiter=200)
    np.testing.assert_allclose(ets(x, 5, 4, 0.9).mean, fit.forecast(5).to_numpy(), rtol=1e-6)


def test_unknown_forecaster():
    with pytest.raises(ConfigError, match="seasonal-naive"):
        evaluate_forecaster("prophet", _data(np.arange(60.0)))
