"""Pictures a person would rather look at than read. All writes are atomic PNGs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
    # metrics on a 0..1 scale share the right axis: accuracy, F1, concordance, coverage, R^2
    unit = ("accuracy", "top5_accuracy", "macro_f1", "c_index", "uno_c", "auc", "r2")
    other = [k for k in keys if k not in loss_keys and (k.split("/")[-1] in unit or k.split("/")[-1].startswith("coverage"))]
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


@dataclass(frozen=True)
class ParallelAxis:
    """One vertical axis of a parallel-coordinates plot: a value per line (None where a line has none,
    e.g. a conditional parameter); ``log`` for a log scale; ``choices`` (in tick order) for a category."""

    name: str
    values: Sequence[Any]
    log: bool = False
    choices: Sequence[Any] | None = None


_UNSET = -0.12  # where a line without a value crosses an axis, below its range


def _short(value: Any, width: int = 9) -> str:
    """A tick label that fits between two axes: 3 significant digits, ``1e-4`` not ``1e-04``."""
    if isinstance(value, float):
        text = f"{value:.3g}".replace("e-0", "e-").replace("e+0", "e")
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _axis_name(name: str) -> str:
    """``optim.weight_decay`` as two short lines (section over key), level, so neighbours cannot touch."""
    section, _, key = name.partition(".")
    return f"{section}\n{_short(key, 14)}" if key else _short(section, 14)


def _numeric_ticks(lo: float, hi: float, log: bool) -> list[float]:
    """The ends of the range and up to three round values inside it, none closer than 15% of the axis."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    if hi <= lo:
        return [lo]
    inner = LogLocator(base=10, numticks=5).tick_values(lo, hi) if log else MaxNLocator(nbins=4).tick_values(lo, hi)
    where = (lambda v: (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))) if log else (
        lambda v: (v - lo) / (hi - lo))
    ticks = [lo, hi]
    for value in inner:
        if lo < value < hi and all(abs(where(value) - where(t)) >= 0.15 for t in ticks):
            ticks.append(float(value))
    return sorted(ticks)


def _axis_positions(axis: ParallelAxis) -> tuple[list[float], list[tuple[float, str]]]:
    """Each line's height on ``axis`` in [0, 1] (``_UNSET`` without a value) and the axis's ticks."""
    present = [v for v in axis.values if v is not None]
    unset = [(_UNSET, "unset")] if len(present) < len(axis.values) else []
    if axis.choices is not None or any(isinstance(v, str | bool) for v in present):
        choices = list(axis.choices) if axis.choices is not None else sorted(set(present), key=str)
        step = 1.0 / max(len(choices) - 1, 1)
        where = {c: (i * step if len(choices) > 1 else 0.5) for i, c in enumerate(choices)}
        heights = [where[v] if v is not None else _UNSET for v in axis.values]
        return heights, [(where[c], _short(c)) for c in choices] + unset
    numbers = [float(v) for v in present]
    lo, hi = min(numbers), max(numbers)
    log = axis.log and lo > 0

    def height(v: float) -> float:
        if hi == lo:
            return 0.5
        return (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) if log else (v - lo) / (hi - lo)

    heights = [height(float(v)) if v is not None else _UNSET for v in axis.values]
    labels = [(height(t), _short(int(t) if t == int(t) and abs(t) >= 1 else t)) for t in _numeric_ticks(lo, hi, log)]
    return heights, labels + unset


def parallel_figure(
    axes: Sequence[ParallelAxis], score: Sequence[float], score_name: str, higher_is_better: bool, title: str = ""
) -> Any:
    """Parallel coordinates: one line per trial through the score's axis and each parameter's, coloured
    by the score. Best lines are dark, drawn last and thickest; the worst end of the colour map is a
    saturated red-orange, visible on white. Ticks are a few rounded values per axis, so that labels of
    neighbouring axes and of one axis do not collide."""
    import matplotlib
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    score = [float(s) for s in score]
    columns = [ParallelAxis(score_name, score), *axes]
    placed = [_axis_positions(a) for a in columns]
    fig, ax = _figure(figsize=(max(6.0, 1.1 * len(columns) + 2.0), 4.8))
    # plasma from dark blue to red-orange (its pale orange and yellow end left out): best dark, worst red-orange
    colours = LinearSegmentedColormap.from_list("best-dark", matplotlib.colormaps["plasma"](np.linspace(0.68, 0.0, 64)))
    lo, hi = min(score), max(score)

    def goodness(value: float) -> float:  # 0 for the worst trial, 1 for the best
        t = (value - lo) / (hi - lo) if hi > lo else 1.0
        return t if higher_is_better else 1.0 - t

    order = sorted(range(len(score)), key=lambda i: score[i] if higher_is_better else -score[i])  # worst first
    xs = list(range(len(columns)))
    for rank, i in enumerate(order):
        best = rank == len(order) - 1
        ax.plot(xs, [heights[i] for heights, _ in placed], color=colours(goodness(score[i])),
                lw=2.6 if best else 1.4, alpha=1.0 if best else (0.85 if len(score) <= 100 else 0.5), zorder=2 + best)
    bottom = (_UNSET if any(label == "unset" for _, ticks in placed for _, label in ticks) else 0.0) - 0.06
    ax.vlines(xs, bottom, 1.05, color="black", lw=0.8, zorder=4)  # a collection: ax.lines are the trials
    for x, (_, ticks) in zip(xs, placed, strict=True):
        for y, label in ticks:
            ax.text(x - 0.04, y, label, ha="right", va="center", fontsize=7, zorder=5,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7})
    ax.set_xticks(xs, [_axis_name(a.name) for a in columns], fontsize=8)
    ax.set_yticks([])
    ax.set_facecolor("white")  # not a style's grey (Optuna's plots switch to ggplot): the palest line must show
    ax.grid(False)
    ax.set_xlim(-0.5, len(columns) - 0.7)
    ax.set_ylim(bottom, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if hi > lo:  # one value has no scale to show
        cmap = colours if higher_is_better else colours.reversed()
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=Normalize(lo, hi), cmap=cmap), ax=ax, pad=0.02)
        bar.set_label(f"{score_name} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title(title or f"parallel coordinates of {len(score)} trial{'s' if len(score) != 1 else ''}")
    return fig


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


def plot_attribution(image: Any, heat: Any, path: str | Path, title: str = "") -> Path:
    """An input image (C, H, W in 0..1), its attribution map (H, W) and the two overlaid, side by side."""
    img = np.asarray(image, dtype=np.float32)
    img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    h = np.asarray(heat, dtype=np.float32)
    h = (h - h.min()) / max(float(h.max() - h.min()), 1e-12)
    fig, axes = _figure(1, 3, figsize=(7.5, 2.8))
    cmap = "gray" if img.ndim == 2 else None
    for ax, name in zip(axes, ("input", "attribution", "overlay"), strict=True):
        if name != "attribution":
            ax.imshow(np.clip(img, 0, 1), cmap=cmap)
        if name != "input":
            ax.imshow(h, cmap="inferno", alpha=0.5 if name == "overlay" else 1.0)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_image_titles(images: Any, titles: Sequence[str], path: str | Path, title: str = "", columns: int = 8) -> Path:
    """A grid of images (N, C, H, W), each min-max scaled for display, with a title under each."""
    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = _figure(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, text in zip(axes.flat, images, titles, strict=False):
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
        ax.imshow(img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0)), cmap="gray" if img.shape[0] == 1 else None)
        ax.set_title(text, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_embedding(features: Any, labels: Any, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Rows of ``features`` (N, D) on their first two principal components, coloured by class."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T if vt.shape[0] >= 2 else np.column_stack([x[:, 0], np.zeros(len(x))])
    labels = np.asarray(labels)
    fig, ax = _figure(figsize=(6, 5))
    cmap = matplotlib_colormap("tab10" if len(class_names) <= 10 else "tab20")
    for k, name in enumerate(class_names):
        at = labels == k
        if at.any():
            ax.scatter(xy[at, 0], xy[at, 1], s=6, alpha=0.7, color=cmap(k % cmap.N), label=str(name))
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def matplotlib_colormap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]
