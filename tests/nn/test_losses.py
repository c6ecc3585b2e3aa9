"""Quantile, robust and imbalance losses against their hand formulas and the reference libraries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_pinball_loss
from sklearn.utils.class_weight import compute_class_weight

from deepatlas.errors import ConfigError
from deepatlas.nn.losses import (
    balanced_weights,
    barron,
    effective_number_weights,
    focal,
    huber,
    pinball,
    tukey,
    weighted_mean,
)


@pytest.mark.parametrize("tau", [0.05, 0.3, 0.5, 0.9])
def test_pinball_is_the_check_function_and_sklearns_mean_pinball_loss(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    y, f = torch.randn(200, generator=g, dtype=torch.float64), torch.randn(200, generator=g, dtype=torch.float64)
    e = y - f
    hand = e * (tau - (e < 0).double())
    torch.testing.assert_close(pinball(y, f, tau), hand)
    assert float(pinball(y, f, tau).mean()) == pytest.approx(mean_pinball_loss(y.numpy(), f.numpy(), alpha=tau), rel=1e-12)
    assert (pinball(y, f, tau) >= 0).all()


def test_the_slides_quantile_formula_is_not_the_check_function() -> None:
    e = torch.tensor([-2.0])
    slide = torch.maximum(0.2 * e, (1 - 0.2) * e)  # max(tau e, (1 - tau) e): negative for a negative residual
    assert float(slide) < 0 and float(pinball(torch.zeros(1), -e, 0.2)) == pytest.approx(1.6)


def test_pinball_minimiser_is_the_quantile() -> None:
    y = torch.randn(20001, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grid = torch.linspace(-3, 3, 601, dtype=torch.float64)
    risk = torch.stack([pinball(y, c, 0.9).mean() for c in grid])
    assert float(grid[risk.argmin()]) == pytest.approx(float(torch.quantile(y, 0.9)), abs=0.011)


def test_huber_equals_torch() -> None:
    r = torch.linspace(-5, 5, 101)
    for delta in (0.5, 1.0, 2.0):
        torch.testing.assert_close(huber(r, delta), F.huber_loss(r, torch.zeros_like(r), delta=delta, reduction="none"))


def test_tukey_biweight() -> None:
    c = 2.0
    r = torch.tensor([0.0, 1.0, -1.5, 2.0, 3.0, -10.0])
    hand = torch.where(r.abs() <= c, c**2 / 6 * (1 - (1 - (r / c) ** 2) ** 3), torch.full_like(r, c**2 / 6))
    torch.testing.assert_close(tukey(r, c), hand)
    assert float(tukey(torch.tensor(0.0), c)) == 0.0


def test_barron_special_cases_and_limits() -> None:
    x, c = torch.linspace(-6, 6, 121, dtype=torch.float64), 1.5
    z = (x / c) ** 2
    torch.testing.assert_close(barron(x, 2.0, c), 0.5 * z)  # L2 / 2
    torch.testing.assert_close(barron(x, 1.0, c), torch.sqrt(z + 1) - 1)  # pseudo-Huber / Charbonnier
    torch.testing.assert_close(barron(x, 0.0, c), torch.log(0.5 * z + 1))  # Cauchy / Lorentzian
    torch.testing.assert_close(barron(x, -2.0, c), 2 * z / (z + 4))  # Geman-McClure
    torch.testing.assert_close(barron(x, -math.inf, c), 1 - torch.exp(-0.5 * z))  # Welsch
    # the general formula approaches each limit
    torch.testing.assert_close(barron(x, 2.0 + 1e-6, c), 0.5 * z, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(barron(x, 1e-7, c), torch.log(0.5 * z + 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(barron(x, -1e7, c), 1 - torch.exp(-0.5 * z), atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError):
        barron(x, 1.0, 0.0)


def test_focal_with_gamma_zero_is_weighted_cross_entropy_and_matches_the_formula() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(50, 4, generator=g), torch.randint(0, 4, (50,), generator=g)
    w = torch.tensor([0.5, 1.0, 2.0, 4.0])
    torch.testing.assert_close(focal(logits, y, 0.0).mean(), F.cross_entropy(logits, y))
    torch.testing.assert_close(weighted_mean(focal(logits, y, 0.0, w), y, w), F.cross_entropy(logits, y, weight=w))
    p_t = torch.softmax(logits, 1)[torch.arange(50), y]
    torch.testing.assert_close(focal(logits, y, 2.0, w), -w[y] * (1 - p_t) ** 2 * torch.log(p_t))


def test_balanced_weights_are_sklearns() -> None:
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    sklearn = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(balanced_weights(np.bincount(y)).numpy(), sklearn, rtol=1e-6)


def test_effective_number_weights() -> None:
    counts, beta = torch.tensor([1000, 100, 10]), 0.99
    raw = (1 - beta) / (1 - beta ** counts.double())
    expected = raw / raw.sum() * 3
    torch.testing.assert_close(effective_number_weights(counts, beta).double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(effective_number_weights(counts, 0.0), torch.ones(3))  # beta = 0: no re-weighting
    w = effective_number_weights(counts, 0.999999)  # beta -> 1: inverse frequency
    torch.testing.assert_close(w / w[0], torch.tensor([1.0, 10.0, 100.0]), rtol=1e-3, atol=1e-3)
    with pytest.raises(ConfigError):
        effective_number_weights(counts, 1.0)
