"""Pictures of a segmentation run: test images with their true and predicted label maps laid over them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .plots import _figure, _save, matplotlib_colormap


def class_colours(num_classes: int) -> np.ndarray:
    """(K, 3) RGB in [0, 1] per class: class 0 (background) black, the others tab10/tab20 colours."""
    cmap = matplotlib_colormap("tab10" if num_classes <= 11 else "tab20")
    return np.array([(0.0, 0.0, 0.0)] + [cmap(k % cmap.N)[:3] for k in range(num_classes - 1)])


def overlay(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, ignore_index: int | None = None, alpha: float = 0.7) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] with every non-background pixel tinted by its class colour (ignored pixels grey)."""
    out = image.copy()
    tinted = labels > 0
    if ignore_index is not None:
        tinted &= labels != ignore_index
        out[labels == ignore_index] = 0.5
    classes = np.clip(labels, 0, len(colours) - 1)
    out[tinted] = (1 - alpha) * out[tinted] + alpha * colours[classes[tinted]]
    return out


def plot_segmentation(
    images: Any, truth: Any, predicted: Any, class_names: Sequence[str], path: str | Path, title: str = "",
    ignore_index: int | None = None,
) -> Path:
    """One row per image: the image (N, C, H, W in [0, 1]), the true mask over it, the predicted mask over it
    (titled with the image's pixel accuracy), and a legend of the class colours. Masks smaller than the
    images (an unpadded U-Net's output) are drawn over the images' centres."""
    images = np.asarray(images, dtype=np.float32)
    images = np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images[:, :3]
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    colours = class_colours(len(class_names))
    n = len(images)
    height = 2.1 * n + 0.8
    fig, axes = _figure(n, 3, figsize=(6.0, height), squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.75 / height, bottom=0.35 / height, wspace=0.05, hspace=0.2)
    for i in range(n):
        img = np.clip(images[i].transpose(1, 2, 0), 0, 1)
        t, p = truth[i], predicted[i]
        top, left = (img.shape[0] - t.shape[0]) // 2, (img.shape[1] - t.shape[1]) // 2  # an unpadded U-Net's centre
        inner = img[top: top + t.shape[0], left: left + t.shape[1]]
        valid = t != ignore_index if ignore_index is not None else np.ones_like(t, dtype=bool)
        accuracy = float((p == t)[valid].mean()) if valid.any() else float("nan")
        panels = ((img, "image"), (overlay(inner, t, colours, ignore_index), "truth"),
                  (overlay(inner, p, colours), f"predicted ({accuracy:.1%} right)"))
        for ax, (picture, name) in zip(axes[i], panels, strict=True):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="white", edgecolor="0.4", label=f"{class_names[0]} (not tinted)")] + [
        Patch(color=colours[k], label=str(name)) for k, name in enumerate(class_names) if k > 0
    ]  # background pixels keep the image's own colours
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.15 / height)
    return _save(fig, path)
