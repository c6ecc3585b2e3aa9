"""The report's figures plot the right data: checked on the matplotlib artists, not on pixels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from deepatlas.metrics.classification import classification_metrics, classification_stats
from deepatlas.report.plots import (
    ParallelAxis,
    parallel_figure,
    plot_reliability,
    reliability_figure,
)


def _calibration(bins: int = 10) -> tuple[dict[str, np.ndarray], float]:
    """Per-bin sums of a random, over-confident classifier, and its ECE as the metric computes it."""
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(400, 5, generator=generator)
    targets = torch.randint(0, 5, (400,), generator=generator)
    totals = classification_stats(logits, targets, bins=bins)
    calibration = {"count": totals["bin_count"].numpy(), "confidence": totals["bin_confidence"].numpy(),
                   "correct": totals["bin_correct"].numpy()}
    return calibration, classification_metrics(totals)["ece"]


def test_reliability_bars_gaps_and_confidence_marks_are_per_bin_means() -> None:
    calibration, ece = _calibration()
    count = calibration["count"]
    used = count > 0
    accuracy = calibration["correct"][used] / count[used]
    confidence = calibration["confidence"][used] / count[used]
    centres = ((np.arange(len(count)) + 0.5) / len(count))[used]
    assert (~used).any() and used.sum() >= 4  # empty bins exist: they must not be drawn

    fig = reliability_figure(calibration)
    ax = fig.axes[0]
    bars = {c.get_label().split(" (")[0]: c for c in ax.containers}
    lines = {line.get_label(): line for line in ax.lines}
    heights = [p.get_height() for p in bars["accuracy"]]
    np.testing.assert_allclose(heights, accuracy, rtol=1e-6)
    np.testing.assert_allclose([p.get_x() + p.get_width() / 2 for p in bars["accuracy"]], centres)
    gap = bars["gap to confidence"]
    lower = np.array([p.get_y() for p in gap])
    upper = lower + np.array([p.get_height() for p in gap])
    np.testing.assert_allclose(lower, np.minimum(accuracy, confidence), rtol=1e-6)
    np.testing.assert_allclose(upper, np.maximum(accuracy, confidence), rtol=1e-6)
    marks = lines["mean confidence"]
    np.testing.assert_allclose(marks.get_ydata(), confidence, rtol=1e-6)  # at confidence height, not accuracy
    assert not np.allclose(marks.get_ydata(), accuracy)
    assert f"ECE {ece:.3f}" in gap.get_label()
    plt.close(fig)


def test_plot_reliability_writes_a_png(tmp_path: Path) -> None:
    calibration, _ = _calibration(bins=15)
    path = plot_reliability(calibration, tmp_path / "r.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bins", [1, 15])
def test_reliability_with_all_samples_in_one_bin(bins: int) -> None:
    count = np.zeros(bins)
    count[-1] = 4
    fig = reliability_figure({"count": count, "confidence": count * 0.99, "correct": count * 0.5})
    [bar] = fig.axes[0].containers[0]
    assert bar.get_height() == pytest.approx(0.5)
    plt.close(fig)


# --------------------------------------------------------------------------- parallel coordinates


def _contrast_with_white(rgb: Sequence[float]) -> float:
    """WCAG contrast ratio of a colour against white (1: invisible, 21: black)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


def _parallel(higher_is_better: bool = True) -> tuple[Any, list[float]]:
    rng = np.random.default_rng(0)
    n = 30
    score = list(rng.uniform(0.5, 0.95, n))
    names = ["adamw", "sgd"]
    axes = [
        ParallelAxis("optim.lr", list(10 ** rng.uniform(-4, -0.5, n)), log=True),
        ParallelAxis("optim.name", [names[i % 2] for i in range(n)], choices=names),
        ParallelAxis("optim.momentum", [float(rng.uniform(0.5, 0.99)) if i % 2 else None for i in range(n)]),
        ParallelAxis("optim.weight_decay", list(10 ** rng.uniform(-6, -1, n)), log=True),
        ParallelAxis("data.batch_size", [int(rng.choice([32, 64, 128, 256])) for _ in range(n)], choices=[32, 64, 128, 256]),
        ParallelAxis("model.width", [int(rng.integers(16, 2048)) for _ in range(n)]),
    ]
    return parallel_figure(axes, score, "val/accuracy", higher_is_better=higher_is_better), score


def test_parallel_tick_labels_are_short_and_never_overlap() -> None:
    fig, _ = _parallel()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_text()]
    assert {t.get_text() for t in texts} >= {"adamw", "sgd", "unset", "32", "256"}
    assert all(len(t.get_text()) <= 9 for t in texts)
    assert not any("e-0" in t.get_text() for t in texts)  # 1e-4, not 1e-04
    boxes = [t.get_window_extent(renderer) for t in texts]
    names = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    for group in (boxes, names):
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                assert not a.overlaps(b), "two labels overlap"
    plt.close(fig)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_parallel_worst_trial_is_visible_and_best_on_top(higher_is_better: bool) -> None:
    fig, score = _parallel(higher_is_better)
    lines = fig.axes[0].lines
    assert len(lines) == len(score)
    first = [line.get_ydata()[0] for line in lines]  # height on the score's axis: worst first, best last
    worst, best = (min(score), max(score)) if higher_is_better else (max(score), min(score))
    lo, hi = min(score), max(score)
    assert first[0] == pytest.approx((worst - lo) / (hi - lo)) and first[-1] == pytest.approx((best - lo) / (hi - lo))
    assert _contrast_with_white(lines[0].get_color()) >= 2.5  # Optuna's Blues fade the worst to about 1.04
    assert _contrast_with_white(lines[-1].get_color()) >= 7 and lines[-1].get_linewidth() > lines[0].get_linewidth()
    assert fig.axes[0].get_facecolor()[:3] == (1.0, 1.0, 1.0)
    plt.close(fig)
