"""Forecast metrics against hand values and the scikit-learn definitions they reduce to."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_pinball_loss, mean_squared_error

from deepatlas.errors import DataError
from deepatlas.metrics.forecast import (
    forecast_pinball,
    forecast_scores,
    mae,
    mase,
    rmse,
    seasonal_naive_scale,
    smape,
)


def test_mase_hand_value_seasonal():
    history = [1.0, 2.0, 3.0, 2.0, 4.0, 5.0]  # m = 2: |3-1|, |2-2|, |4-3|, |5-2| -> mean 6/4 = 1.5
    assert seasonal_naive_scale(history, 2) == pytest.approx(1.5)
    y, f = [6.0, 4.0], [5.0, 5.0]  # MAE 1
    assert mase(y, f, history, season=2) == pytest.approx(1.0 / 1.5)


def test_mase_naive_scale_and_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50).cumsum()
    y, f = rng.normal(size=8), rng.normal(size=8)
    scale = mean_absolute_error(x[1:], x[:-1])
    assert mase(y, f, x, season=1) == pytest.approx(mean_absolute_error(y, f) / scale, rel=1e-12)


def test_mase_of_seasonal_naive_in_sample_is_one():
    """Scoring the seasonal-naive forecast of the history's own last values gives exactly 1 in sample."""
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    assert mase(x[3:], x[:-3], x, season=3) == pytest.approx(1.0)


def test_mase_constant_history():
    assert mase([1.0], [1.0], [2.0, 2.0, 2.0]) == 0.0
    assert math.isinf(mase([1.0], [2.0], [2.0, 2.0, 2.0]))
    with pytest.raises(DataError):
        seasonal_naive_scale([1.0, 2.0], 12)


def test_smape_hand_value_and_not_mape():
    y, f = np.array([100.0, 50.0, 0.0]), np.array([110.0, 40.0, 0.0])
    expected = 200.0 / 3 * (10 / 210 + 10 / 90 + 0.0)
    assert smape(y, f) == pytest.approx(expected)
    from sklearn.metrics import mean_absolute_percentage_error

    y2, f2 = np.array([100.0, 50.0]), np.array([110.0, 40.0])
    assert smape(y2, f2) != pytest.approx(100 * mean_absolute_percentage_error(y2, f2))
    # sMAPE is symmetric in (y, f), MAPE is not
    assert smape(y2, f2) == pytest.approx(smape(f2, y2))


def test_mae_rmse_match_sklearn():
    rng = np.random.default_rng(1)
    y, f = rng.normal(size=20), rng.normal(size=20)
    assert mae(y, f) == pytest.approx(mean_absolute_error(y, f))
    assert rmse(y, f) == pytest.approx(math.sqrt(mean_squared_error(y, f)))
    with pytest.raises(DataError):
        mae([1.0, 2.0], [1.0])


def test_pinball_hand_value_and_sklearn():
    # e = y - q; tau = 0.9: y above q by 2 -> 0.9 * 2 = 1.8; y below q by 2 -> 0.1 * 2 = 0.2
    assert forecast_pinball([3.0, 1.0], [[1.0], [3.0]], [0.9]) == pytest.approx((1.8 + 0.2) / 2)
    rng = np.random.default_rng(2)
    y = rng.normal(size=(4, 6))  # (origins, horizon)
    levels = [0.05, 0.5, 0.95]
    q = np.sort(rng.normal(size=(4, 6, 3)), axis=-1)
    expected = np.mean([mean_pinball_loss(y.ravel(), q[..., k].ravel(), alpha=tau) for k, tau in enumerate(levels)])
    assert forecast_pinball(y, q, levels) == pytest.approx(expected)


def test_forecast_scores_with_coverage():
    scores = forecast_scores([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], [0.0, 1.0, 2.0], 1, lower=[0, 0, 0, 0], upper=[2, 2, 2, 5])
    assert scores["coverage"] == pytest.approx(0.75)  # 3 is outside [0, 2]
    assert scores["mase"] == pytest.approx(0.25)
    assert set(scores) == {"mae", "rmse", "smape", "mase", "coverage"}
