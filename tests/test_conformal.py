"""Pinball loss, interval scores and the finite-sample guarantee of split conformal and CQR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_pinball_loss

from deepatlas.conformal import (
    SplitConformalRegressor,
    conformal_quantile,
    conformal_rank,
    cqr_correction,
    cqr_interval,
)
from deepatlas.errors import ConfigError
from deepatlas.metrics.intervals import (
    conformal_coverage_band,
    coverage,
    coverage_band,
    crps_from_quantiles,
    interval_score,
    mean_pinball,
    mean_width,
    pinball,
    pinball_loss,
    pinball_losses,
)


def test_pinball_hand_values() -> None:
    # y above q: tau * e; y below q: (1 - tau) * |e|
    assert pinball_loss([1.0], [0.0], 0.9) == pytest.approx(0.9)
    assert pinball_loss([0.0], [1.0], 0.9) == pytest.approx(0.1)
    assert pinball_loss([3.0, -1.0], [1.0, 1.0], 0.25) == pytest.approx((0.25 * 2 + 0.75 * 2) / 2)
    t = pinball(torch.tensor([[0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([0.1, 0.9]))
    assert torch.allclose(t, torch.tensor([[0.9, 0.1]]))


def test_pinball_is_not_the_slide_formula() -> None:
    """max(tau e, (1 - tau) e) is wrong for e < 0: it scores an over-prediction by 1 at tau=0.9 as -0.1."""
    e, tau = -1.0, 0.9
    assert max(tau * e, (1 - tau) * e) == pytest.approx(-0.1)  # the slide: negative, not a loss
    assert pinball_loss([0.0], [1.0], tau) == pytest.approx(0.1)


@pytest.mark.parametrize("tau", [0.05, 0.5, 0.9])
def test_pinball_equals_sklearn(tau: float) -> None:
    rng = np.random.default_rng(0)
    y, q = rng.normal(size=200), rng.normal(size=200)
    assert pinball_loss(y, q, tau) == pytest.approx(mean_pinball_loss(y, q, alpha=tau), abs=1e-12)
    levels = [0.1, tau, 0.95]
    qs = rng.normal(size=(200, 3))
    expected = [mean_pinball_loss(y, qs[:, j], alpha=a) for j, a in enumerate(levels)]
    np.testing.assert_allclose(pinball_losses(y, qs, levels), expected, atol=1e-12)
    assert mean_pinball(y, qs, levels) == pytest.approx(np.mean(expected))


def test_crps_from_many_quantiles_matches_the_normal_closed_form() -> None:
    """CRPS(N(0, 1), y) = y (2 Phi(y) - 1) + 2 phi(y) - 1 / sqrt(pi) (Gneiting & Raftery, 2007)."""
    levels = (np.arange(2000) + 0.5) / 2000
    for y in (-1.3, 0.0, 0.4, 2.5):
        exact = y * (2 * norm.cdf(y) - 1) + 2 * norm.pdf(y) - 1 / math.sqrt(math.pi)
        approx = crps_from_quantiles([y], norm.ppf(levels)[None, :], levels)
        assert approx == pytest.approx(exact, abs=2e-3)


def test_coverage_width_interval_score() -> None:
    y, lo, hi = np.array([0.0, 2.0, -3.0]), np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0])
    assert coverage(y, lo, hi) == pytest.approx(1 / 3)
    assert mean_width(lo, hi) == pytest.approx(2.0)
    # widths 2 each, misses 1 above and 2 below, alpha = 0.2 -> penalties 10 and 20
    assert interval_score(y, lo, hi, 0.2) == pytest.approx((2 + 12 + 22) / 3)


def test_coverage_band_is_the_binomial_range() -> None:
    lo, hi = coverage_band(100, 0.9)
    assert (lo, hi) == (binom.ppf(0.025, 100, 0.9) / 100, binom.ppf(0.975, 100, 0.9) / 100)
    assert lo < 0.9 < hi
    assert coverage_band(1000, 0.9)[1] - coverage_band(1000, 0.9)[0] < hi - lo


def test_conformal_quantile_is_the_kth_order_statistic() -> None:
    scores = np.arange(1.0, 11.0)[::-1]  # 10 scores, unsorted
    assert conformal_rank(10, 0.1) == 10 and conformal_quantile(scores, 0.1) == 10.0  # ceil(9.9) = 10
    assert conformal_rank(10, 0.2) == 9 and conformal_quantile(scores, 0.2) == 9.0  # ceil(8.8) = 9
    assert conformal_rank(99, 0.1) == 90  # (n + 1)(1 - alpha) = 90 exactly: no extra rank from float noise
    assert math.isinf(conformal_quantile(np.arange(5.0), 0.1))  # ceil(5.4) = 6 > 5
    with pytest.raises(ConfigError):
        conformal_quantile(scores, 1.0)


def test_cqr_interval_hand_values() -> None:
    y = np.array([0.0, 5.0, -4.0])
    lo, hi = np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0])
    # scores max(lo - y, y - hi) = [-1, 4, 3]; n=3, alpha=0.5: k = ceil(2) = 2 -> Q = 3
    q = cqr_correction(y, lo, hi, 0.5)
    assert q == (3.0, 3.0)
    low, up = cqr_interval(lo, hi, q)
    np.testing.assert_allclose(low, [-4, -4, -4]) and np.testing.assert_allclose(up, [4, 4, 4])


def _heteroscedastic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(0, 3, size=(n, 1))
    return x, 2 * x[:, 0] + (0.2 + x[:, 0]) * rng.standard_t(4, size=n)


def test_split_conformal_covers_in_finite_samples() -> None:
    """E[coverage] is in [1 - alpha, 1 - alpha + 1 / (n + 1)] (Lei et al., 2018, Theorem 2.2)."""
    rng, alpha, n_cal, reps = np.random.default_rng(1), 0.1, 40, 400
    covered = []
    for _ in range(reps):
        x, y = _heteroscedastic(rng, 40 + n_cal + 200)
        scr = SplitConformalRegressor(LinearRegression(), coverage=1 - alpha)
        scr.fit(x[:40], y[:40], x[40:40 + n_cal], y[40:40 + n_cal])
        covered.append(coverage(y[40 + n_cal:], *scr.predict_interval(x[40 + n_cal:])))
    mean, se = np.mean(covered), np.std(covered) / math.sqrt(reps)
    assert 1 - alpha - 3 * se <= mean <= 1 - alpha + 1 / (n_cal + 1) + 3 * se


@pytest.mark.parametrize("symmetric", [True, False])
def test_cqr_covers_in_finite_samples_even_with_bad_quantiles(symmetric: bool) -> None:
    """Quantile predictions far too narrow (and off-centre) still give >= 1 - alpha coverage once conformalized."""
    rng, alpha, n_cal, reps = np.random.default_rng(2), 0.1, 50, 600
    covered, raw = [], []
    band = (lambda x: 2 * x[:, 0] - 0.3, lambda x: 2 * x[:, 0] + 0.1)
    for _ in range(reps):
        x, y = _heteroscedastic(rng, n_cal + 200)
        xc, yc, xt, yt = x[:n_cal], y[:n_cal], x[n_cal:], y[n_cal:]
        q = cqr_correction(yc, band[0](xc), band[1](xc), alpha, symmetric=symmetric)
        covered.append(coverage(yt, *cqr_interval(band[0](xt), band[1](xt), q)))
        raw.append(coverage(yt, band[0](xt), band[1](xt)))
    mean, se = np.mean(covered), np.std(covered) / math.sqrt(reps)
    assert np.mean(raw) < 0.5  # the raw band is badly miscalibrated
    upper = 1 - alpha + (2 if not symmetric else 1) / (n_cal + 1)  # two sides of alpha/2: up to 2/(n+1) over
    assert 1 - alpha - 3 * se <= mean <= upper + 3 * se


def test_split_conformal_regressor_prefit_and_errors() -> None:
    rng = np.random.default_rng(3)
    x, y = _heteroscedastic(rng, 100)
    model = LinearRegression().fit(x[:50], y[:50])
    scr = SplitConformalRegressor(model, coverage=0.8, prefit=True).fit(None, None, x[50:], y[50:])
    lo, hi = scr.predict_interval(x)
    q = np.sort(np.abs(y[50:] - model.predict(x[50:])))[math.ceil(51 * 0.8) - 1]
    np.testing.assert_allclose(hi - lo, 2 * q)
    with pytest.raises(ConfigError):
        SplitConformalRegressor(model, coverage=1.5)
    with pytest.raises(ConfigError):
        SplitConformalRegressor(model).predict_interval(x)


def test_conformal_coverage_band_is_wider_and_matches_simulation() -> None:
    """The coverage of split conformal on n test rows is Beta-Binomial(n, k, m + 1 - k) / n."""
    n, m, alpha = 71, 49, 0.1
    lo, hi = conformal_coverage_band(n, m, 1 - alpha)
    b_lo, b_hi = coverage_band(n, 1 - alpha)
    assert lo <= b_lo and hi >= b_hi and (lo, hi) != (b_lo, b_hi)
    rng = np.random.default_rng(4)
    scores = rng.exponential(size=(20000, m + n))  # exchangeable scores: first m calibrate, the rest test
    q = np.sort(scores[:, :m], axis=1)[:, conformal_rank(m, alpha) - 1]
    observed = (scores[:, m:] <= q[:, None]).mean(axis=1)
    assert abs(np.mean(observed) - 45 / 50) < 3e-3  # E = k / (m + 1)
    inside = np.mean((observed >= lo) & (observed <= hi))
    assert 0.94 <= inside <= 0.995  # a discrete 95% band holds at least 95%
    assert np.mean((observed >= b_lo) & (observed <= b_hi)) < 0.9  # the binomial band alone is too narrow
    assert conformal_coverage_band(10, 5, 0.9) == (1.0, 1.0)
