"""Semantic segmentation metrics from a pixel confusion matrix summed over a split.

With C[i, j] the number of pixels of true class i predicted as j (pixels whose label is the
ignore index left out), per class k: TP = C[k, k], FP = sum_i C[i, k] - TP, FN = sum_j C[k, j] - TP,

    IoU_k = TP / (TP + FP + FN)            (the Jaccard index)
    Dice_k = 2 TP / (2 TP + FP + FN)        (the F1 score of the class's pixels)

mean IoU and mean Dice average over the classes that occur in the split's truth or predictions
(TP + FP + FN > 0), as PASCAL VOC and Cityscapes do; pixel accuracy is trace(C) / sum(C). Summing
the matrix over batches and dividing once makes the metrics exact for the whole split, not an
average of per-batch values.
"""

from __future__ import annotations

import torch


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """(K, K) int64 counts of true class (rows) against predicted class (columns) over every pixel."""
    predicted, target = predicted.reshape(-1), target.reshape(-1)
    if ignore_index is not None:
        keep = target != ignore_index
        predicted, target = predicted[keep], target[keep]
    return torch.bincount(target * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def class_scores(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class IoU and Dice (K,), float64; NaN for a class absent from both truth and predictions."""
    c = confusion.double()
    tp = c.diagonal()
    fp, fn = c.sum(dim=0) - tp, c.sum(dim=1) - tp
    union = tp + fp + fn
    nan = torch.full_like(tp, float("nan"))
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), nan)
    return iou, dice


def segmentation_metrics(confusion: torch.Tensor) -> dict[str, float]:
    """mean IoU, mean Dice (over the classes present) and pixel accuracy of a summed confusion matrix."""
    iou, dice = class_scores(confusion)
    total = float(confusion.sum())
    return {
        "mean_iou": float(iou.nanmean()) if (~iou.isnan()).any() else float("nan"),
        "mean_dice": float(dice.nanmean()) if (~dice.isnan()).any() else float("nan"),
        "pixel_accuracy": float(confusion.diagonal().sum()) / total if total else float("nan"),
    }
