"""Pictures a person would rather look at than read. All writes are atomic PNGs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path


def _figure(*args: Any, **kwargs: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(epochs: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Loss (left) and other metrics (right) per epoch, training vs validation."""
    if not epochs:
        return None
    x = [row["epoch"] for row in epochs]
    keys = sorted({k for row in epochs for k in row if "/" in k and isinstance(row[k], (int, float))})
    loss_keys = [k for k in keys if k.split("/")[-1] in ("loss", "nll")]
    other = [k for k in keys if k not in loss_keys and k.split("/")[-1] in ("accuracy", "top5_accuracy", "macro_f1")]
    fig, axes = _figure(1, 2, figsize=(11, 4))
    for ax, group, label in ((axes[0], loss_keys, "loss"), (axes[1], other, "metric")):
        for key in group:
            ax.plot(x, [row.get(key, np.nan) for row in epochs], marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if group:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class in rows), counts in the cells."""
    matrix = np.asarray(matrix)
    k = len(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.55 * k + 2)
    fig, ax = _figure(figsize=(size, size * 0.85))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    return _save(fig, path)


def reliability_figure(calibration: dict[str, np.ndarray], title: str = "") -> Any:
    """Reliability diagram (Guo et al., 2017, Fig. 1): per confidence bin, the accuracy as a bar, the
    bin's mean confidence as a dash, and the gap between the two hatched (the terms of the ECE, whose
    value the legend gives). ``calibration`` holds per-bin sums: ``count``, ``confidence``, ``correct``."""
    count = np.asarray(calibration["count"], dtype=float)
    bins = len(count)
    used = count > 0  # an empty bin has no accuracy: drawn as nothing rather than as a zero bar
    centres = ((np.arange(bins) + 0.5) / bins)[used]
    accuracy = np.asarray(calibration["correct"], dtype=float)[used] / count[used]
    confidence = np.asarray(calibration["confidence"], dtype=float)[used] / count[used]
    ece = float((count[used] * np.abs(accuracy - confidence)).sum() / max(count.sum(), 1.0))
    fig, ax = _figure(figsize=(4.5, 4.5))
    ax.bar(centres, accuracy, width=1 / bins, color="C0", edgecolor="black", alpha=0.7, label="accuracy")
    ax.bar(centres, np.abs(confidence - accuracy), bottom=np.minimum(accuracy, confidence), width=1 / bins,
           facecolor="none", hatch="///", edgecolor="C3", linewidth=0.8, label=f"gap to confidence (ECE {ece:.3f})")
    ax.plot(centres, confidence, "_", color="C3", ms=230 / bins, mew=2,  # about a bar wide
            label="mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)  # a full bar's top edge stays visible
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)  # off the bars
    ax.set_title(title)
    return fig


def plot_reliability(calibration: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """The :func:`reliability_figure` of ``calibration`` as a PNG."""
    return _save(reliability_figure(calibration, title), path)


def save_image_grid(images: Any, path: str | Path, nrow: int | None = None, pad: int = 2) -> Path:
    """Images (N, C, H, W) in [0, 1] tiled into one PNG, ``nrow`` per row (default: a square)."""
    x = np.asarray(images)
    n, c, h, w = x.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = x[i].transpose(1, 2, 0)
    from matplotlib import image

    path = Path(path)
    with atomic_path(path) as tmp:
        if c == 1:
            image.imsave(tmp, grid[..., 0], cmap="gray", vmin=0, vmax=1, format="png")
        else:
            image.imsave(tmp, grid, format="png")
    return path
