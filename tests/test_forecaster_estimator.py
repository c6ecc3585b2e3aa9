"""The forecaster estimator: fit(series) -> predict(horizon) / predict_interval, scikit-learn conventions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from deepatlas.sklearn import DeepForecaster


def _seasonal(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    return 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(seed).normal(0, 1, n)


@pytest.fixture(scope="module")
def fitted() -> DeepForecaster:
    return DeepForecaster(context=24, horizon=6, season=12, epochs=40, calibration_windows=20,
                          options={"model.width": 32}).fit(_seasonal(200))


def test_fit_predict_interval_and_horizon(fitted) -> None:
    future = _seasonal(206)[200:]
    forecast = fitted.predict()
    assert forecast.shape == (6,) and np.all(np.isfinite(forecast))
    assert np.abs(forecast - future).mean() < 5.0  # the season's amplitude is 10, its noise 1
    band = fitted.predict_interval()
    assert band.shape == (6, 2) and np.all(band[:, 0] < forecast) and np.all(forecast < band[:, 1])
    assert fitted.predict(3).shape == (3,) and fitted.predict_interval(2).shape == (2, 2)
    np.testing.assert_allclose(fitted.predict(3), forecast[:3])
    with pytest.raises(ValueError, match="fitted for 1..6"):
        fitted.predict(7)
    with pytest.raises(ValueError, match="coverage"):
        fitted.predict_interval(coverage=0.5)


def test_update_moves_the_origin_without_refitting(fitted) -> None:
    model = clone(fitted).set_params()  # parameters survive clone
    assert model.get_params()["horizon"] == 6 and not hasattr(model, "predictor_")
    with pytest.raises(NotFittedError):
        model.predict()
    before = fitted.predict()
    fitted.update(_seasonal(206)[200:])
    try:
        assert not np.allclose(fitted.predict(), before)
        assert len(fitted.history_) == 206
    finally:
        fitted.history_ = fitted.history_[:200]


def test_bad_series_and_no_interval() -> None:
    with pytest.raises(ValueError, match="NaN"):
        DeepForecaster(epochs=1).fit(np.array([1.0, np.nan] * 40))
    with pytest.raises(ValueError, match="one series"):
        DeepForecaster(epochs=1).fit(np.ones((50, 3)))
    short = DeepForecaster(context=6, horizon=3, epochs=2).fit(_seasonal(40))  # too short for the automatic 20 windows
    assert short.n_calibration_ == 0 and short.predict().shape == (3,)
    with pytest.raises(ValueError, match="calibration_windows"):
        short.predict_interval()


def test_quantile_forecaster_with_covariates() -> None:
    y = _seasonal(120)
    X = np.column_stack([np.sin(np.arange(120) / 5)])
    model = DeepForecaster(context=12, horizon=4, epochs=3, quantiles=(0.1, 0.5, 0.9), coverage=0.8,
                           calibration_windows=0, model="gru-forecaster").fit(y, X)
    q = model.predict_quantiles([0.1, 0.5, 0.9])
    assert q.shape == (4, 3) and np.all(np.diff(q, axis=1) >= 0)
    band = model.predict_interval()
    np.testing.assert_allclose(band, q[:, [0, 2]])  # uncalibrated: the raw band of the trained levels
    with pytest.raises(ValueError, match="covariates"):
        model.update([1.0, 2.0])
