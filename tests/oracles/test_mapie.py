"""Oracle: our split-conformal and CQR intervals equal MAPIE's (1.x) on the same rows and prefit models.

MAPIE 1.x takes the k-th smallest score, k = ceil((n + 1)(1 - alpha)), as ``np.quantile(level k/n,
method="lower")``; ours is the same order statistic. Its ConformalizedQuantileRegressor corrects each
side separately at 1 - alpha/2 by default (``symmetric_correction=False``, Romano et al.'s Theorem 2);
Romano et al.'s eq. 7 (one Q for both ends, our default) is its ``symmetric_correction=True``. Both are
compared. Estimators are prefit, so both libraries see the same predictions.
"""

from __future__ import annotations

import numpy as np
import pytest
from mapie.regression import ConformalizedQuantileRegressor
from mapie.regression import SplitConformalRegressor as MapieSCR
from sklearn.datasets import load_diabetes
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from deepatlas.conformal import SplitConformalRegressor, cqr_correction, cqr_interval


def _split(n_cal: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    train, cal, test = order[:200], order[200:200 + n_cal], order[200 + n_cal:]
    return x[train], y[train], x[cal], y[cal], x[test], y[test]


@pytest.mark.parametrize("n_cal", [49, 99, 137])  # n = 99: (n + 1) * 0.9 is an integer
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95])
@pytest.mark.parametrize("make", [LinearRegression, lambda: GradientBoostingRegressor(n_estimators=30, random_state=0)])
def test_split_conformal_equals_mapie(n_cal: int, confidence: float, make) -> None:
    xt, yt, xc, yc, xs, _ = _split(n_cal)
    model = make().fit(xt, yt)
    ours = SplitConformalRegressor(model, coverage=confidence, prefit=True).fit(None, None, xc, yc)
    lower, upper = ours.predict_interval(xs)
    _, bounds = MapieSCR(model, confidence_level=confidence, prefit=True).conformalize(xc, yc).predict_interval(xs)
    np.testing.assert_allclose(lower, bounds[:, 0, 0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(upper, bounds[:, 1, 0], rtol=0, atol=1e-8)


@pytest.fixture(scope="module")
def quantile_models() -> tuple[list[GradientBoostingRegressor], tuple[np.ndarray, ...]]:
    data = _split(120, seed=1)
    models = [GradientBoostingRegressor(loss="quantile", alpha=a, n_estimators=40, random_state=0).fit(data[0], data[1])
              for a in (0.05, 0.95, 0.5)]  # MAPIE's order: alpha/2, 1 - alpha/2, median
    return models, data


@pytest.mark.parametrize("symmetric", [True, False])
def test_cqr_equals_mapie(quantile_models, symmetric: bool) -> None:
    models, (_, _, xc, yc, xs, _) = quantile_models
    q = cqr_correction(yc, models[0].predict(xc), models[1].predict(xc), 0.1, symmetric=symmetric)
    lower, upper = cqr_interval(models[0].predict(xs), models[1].predict(xs), q)
    mapie = ConformalizedQuantileRegressor(models, confidence_level=0.9, prefit=True).conformalize(xc, yc)
    _, bounds = mapie.predict_interval(xs, symmetric_correction=symmetric)
    np.testing.assert_allclose(lower, bounds[:, 0, 0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(upper, bounds[:, 1, 0], rtol=0, atol=1e-8)


def test_symmetric_and_asymmetric_cqr_differ(quantile_models) -> None:
    """The two conventions are not the same interval, so the matching test above can tell them apart."""
    models, (_, _, xc, yc, _, _) = quantile_models
    lo, hi = models[0].predict(xc), models[1].predict(xc)
    assert cqr_correction(yc, lo, hi, 0.1, symmetric=True) != cqr_correction(yc, lo, hi, 0.1, symmetric=False)
