"""Frechet distance, the Inception-Score analogue and class coverage on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from deepatlas.metrics import class_coverage, feature_statistics, frechet_distance, inception_score


def test_frechet_distance_of_diagonal_gaussians_has_a_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()  # 5 + (1 + 1 + 4)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_frechet_distance_of_a_sample_with_itself_is_zero_and_grows_with_a_shift() -> None:
    x = np.random.default_rng(0).normal(size=(2000, 8))
    stats = feature_statistics(x)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(*stats, *feature_statistics(x + 0.5)) == pytest.approx(8 * 0.25, rel=1e-6)


def test_inception_score_bounds() -> None:
    confident_and_diverse = np.eye(10)[np.arange(100) % 10]
    assert inception_score(confident_and_diverse) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
    collapsed = np.eye(10)[np.zeros(100, dtype=int)]
    assert inception_score(collapsed) == pytest.approx(1.0)


def test_class_coverage_shows_missing_classes() -> None:
    out = class_coverage(np.array([0, 0, 1, 1, 2, 2, 2, 2]), num_classes=4)
    assert out["coverage"] == 0.75 and out["class_share"] == [0.25, 0.25, 0.5, 0.0]
