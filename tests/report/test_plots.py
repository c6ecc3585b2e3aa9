"""The report's figures plot the right data: checked on the matplotlib artists, not on pixels."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from deepatlas.metrics.classification import classification_metrics, classification_stats
from deepatlas.report.plots import plot_reliability, reliability_figure


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
