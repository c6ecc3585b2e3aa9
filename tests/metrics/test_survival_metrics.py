"""Survival metrics against lifelines and scikit-survival as oracles, on random data with ties."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index
from sksurv.metrics import brier_score as sk_brier
from sksurv.metrics import concordance_index_ipcw
from sksurv.metrics import integrated_brier_score as sk_ibs
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from deepatlas.metrics.survival import (
    brier_score,
    harrell_c,
    integrated_brier_score,
    kaplan_meier,
    uno_c,
)


def tied_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 30, n).astype(float)  # many tied times
    event = rng.random(n) < 0.6
    risk = rng.integers(0, 8, n).astype(float)  # many tied predictions
    return time, event, risk


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harrell_c_equals_lifelines_exactly(seed: int) -> None:
    time, event, risk = tied_data(300, seed)
    assert harrell_c(time, event, risk) == concordance_index(time, -risk, event)
    risk = np.random.default_rng(seed).normal(size=300)
    assert harrell_c(time, event, risk) == concordance_index(time, -risk, event)


def test_kaplan_meier_equals_lifelines_and_sksurv() -> None:
    time, event, _ = tied_data(200, 3)
    t, s = kaplan_meier(time, event)
    kmf = KaplanMeierFitter().fit(time, event)
    np.testing.assert_allclose(s, kmf.survival_function_at_times(t).to_numpy(), rtol=1e-12)
    t_sk, _g_sk = kaplan_meier_estimator(~event, time)  # plain KM of the censorings ...
    t_rev, g_rev = kaplan_meier_estimator(event, time, reverse=True)  # ... and scikit-survival's reverse one
    np.testing.assert_array_equal(kaplan_meier(time, event, reverse=True)[0], t_rev)
    np.testing.assert_allclose(kaplan_meier(time, event, reverse=True)[1], g_rev, rtol=1e-12)
    assert len(t_sk) == len(t_rev)


@pytest.mark.parametrize("tau", [None, 20.0])
def test_uno_c_equals_sksurv(tau: float | None) -> None:
    train_t, train_e, _ = tied_data(400, 4)
    time, event, risk = tied_data(250, 5)
    time = np.minimum(time, train_t.max() - 1)  # scikit-survival needs G > 0 at every test event time
    expected = concordance_index_ipcw(Surv.from_arrays(train_e, train_t), Surv.from_arrays(event, time), risk, tau=tau)[0]
    assert uno_c(train_t, train_e, time, event, risk, tau=tau) == pytest.approx(expected, rel=1e-12)


def test_brier_and_integrated_brier_equal_sksurv() -> None:
    train_t, train_e, _ = tied_data(400, 6)
    time, event, _ = tied_data(250, 7)
    time = np.minimum(time, train_t.max())
    times = np.array([3.0, 5.5, 9.0, 14.0, 20.0, 25.0])
    survival = np.random.default_rng(8).uniform(size=(250, len(times)))
    survival = np.sort(survival, axis=1)[:, ::-1]
    y_train, y_test = Surv.from_arrays(train_e, train_t), Surv.from_arrays(event, time)
    np.testing.assert_allclose(brier_score(train_t, train_e, time, event, survival, times),
                               sk_brier(y_train, y_test, survival, times)[1], rtol=1e-12)
    assert integrated_brier_score(train_t, train_e, time, event, survival, times) == pytest.approx(
        sk_ibs(y_train, y_test, survival, times), rel=1e-12)


def test_a_perfect_ranking_scores_one_and_a_reversed_one_zero() -> None:
    time = np.arange(1.0, 11.0)
    event = np.ones(10, dtype=bool)
    assert harrell_c(time, event, -time) == 1.0
    assert harrell_c(time, event, time) == 0.0
