"""Semantic segmentation: a class per pixel (U-Net, Ronneberger et al. 2015).

Losses, on logits z (B, K, H, W), softmax p = softmax(z) over the classes and one-hot targets
g, summed over the batch's valid pixels i (those whose label is not the ignore index):

- ``cross-entropy``: -1/N sum_i log p_{i, y_i}, the paper's pixel-wise soft-max with
  cross-entropy (its Eq. 1 without the border weight map w(x)).
- ``dice``: 1 - 1/K sum_k (2 sum_i p_ik g_ik + s) / (sum_i p_ik + sum_i g_ik + s), the soft
  Dice loss (Milletari, Navab & Ahmadi 2016, V-Net, Eq. 1, with squares replaced by the plain
  sums as in Sudre et al. 2017), averaged over the classes; ``s`` (``task.smooth``) keeps a class
  absent from the batch's truth and prediction at Dice 1, not 0/0.
- ``iou``: 1 - 1/K sum_k (I_k + s) / (sum_i p_ik + sum_i g_ik - I_k + s) with I_k = sum_i p_ik g_ik,
  the soft Jaccard (IoU) loss (Rahman & Wang 2016).
- ``ce-dice``: cross-entropy + ``task.dice_weight`` x Dice, the combination of nnU-Net (Isensee et al. 2021).

Metrics (per split, from the pixel confusion matrix: :mod:`deepatlas.metrics.segmentation`): mean IoU,
mean Dice, pixel accuracy, and the mean loss per image. A network whose output is smaller than its input
(an unpadded U-Net) is scored on the centre of each mask, the region it sees whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..metrics.segmentation import class_scores, confusion_matrix, segmentation_metrics
from ..registry import TASKS
from ..schema import option
from .base import Evaluation, ExportInputs, StepOutput, Task, accumulate


@dataclass(frozen=True)
class SegmentationConfig:
    loss: Literal["cross-entropy", "dice", "iou", "ce-dice"] = option(
        "cross-entropy", "training loss: pixel-wise cross-entropy, soft Dice, soft IoU (Jaccard), or cross-entropy + Dice",
    )
    smooth: float = option(1.0, "smoothing term s of the soft Dice and IoU losses", low=0.0)
    dice_weight: float = option(1.0, "ce-dice: weight of the Dice term added to the cross-entropy", low=0.0)
    figure_images: int = option(8, "images of the first evaluation batch drawn with true and predicted masks", low=0, high=64)


def _valid_one_hot(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and one-hot targets (B, K, H, W), both zero at ignored pixels."""
    p = logits.float().softmax(dim=1)
    valid = (target != ignore_index) if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    g = F.one_hot(torch.where(valid, target, 0), p.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
    mask = valid[:, None].to(p.dtype)
    return p * mask, g * mask


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, ignore_index: int | None = None) -> torch.Tensor:
    """1 - mean_k (2 I_k + s) / (P_k + G_k + s) over the batch's pixels (see the module doc)."""
    p, g = _valid_one_hot(logits, target, ignore_index)
    intersection, total = (p * g).sum(dim=(0, 2, 3)), p.sum(dim=(0, 2, 3)) + g.sum(dim=(0, 2, 3))
    return 1 - ((2 * intersection + smooth) / (total + smooth)).mean()


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, ignore_index: int | None = None) -> torch.Tensor:
    """1 - mean_k (I_k + s) / (P_k + G_k - I_k + s) over the batch's pixels (see the module doc)."""
    p, g = _valid_one_hot(logits, target, ignore_index)
    intersection, total = (p * g).sum(dim=(0, 2, 3)), p.sum(dim=(0, 2, 3)) + g.sum(dim=(0, 2, 3))
    return 1 - ((intersection + smooth) / (total - intersection + smooth)).mean()


def centre_crop(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centre (B, h, w) of label maps (B, H, W): what an unpadded network's output covers."""
    top, left = (masks.shape[-2] - size[0]) // 2, (masks.shape[-1] - size[1]) // 2
    return masks[..., top: top + size[0], left: left + size[1]]


class Segmentation(Task):
    monitor = ("mean_iou", "max")
    directions: ClassVar[Mapping[str, str]] = {"loss": "min", "mean_iou": "max", "mean_dice": "max", "pixel_accuracy": "max"}
    capabilities = frozenset({"predict", "export"})
    predicts = "label-maps"
    data_kind = "segmentation"

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        classes = meta.get("num_classes")
        if not isinstance(classes, int) or classes < 2:
            raise DataError(f"data: segmentation needs at least two classes per pixel (the data has {classes}).")
        self.num_classes = classes
        self.ignore_index: int | None = meta.get("ignore_index")

    def check_model(self, model: nn.Module) -> None:
        if not getattr(model, "dense_output", False):
            raise ConfigError(
                f"model.name: {type(model).__name__} outputs one prediction per image; the segmentation task needs "
                "a network that outputs class logits per pixel (model.name=unet-seg)."
            )

    # ----------------------------------------------------------------- losses

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, h, w) logits and (B, h, w) labels (the masks' centre when the output is smaller)."""
        x, y = batch
        logits = model(x)
        return logits, (centre_crop(y, logits.shape[-2:]) if logits.shape[-2:] != y.shape[-2:] else y)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        kind, ignore = self.config.loss, self.ignore_index
        if kind == "dice":
            return soft_dice_loss(logits, y, self.config.smooth, ignore)
        if kind == "iou":
            return soft_iou_loss(logits, y, self.config.smooth, ignore)
        ce = F.cross_entropy(logits.float(), y, ignore_index=ignore if ignore is not None else -100)
        if kind == "ce-dice":
            return ce + self.config.dice_weight * soft_dice_loss(logits, y, self.config.smooth, ignore)
        return ce

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        logits, y = self.logits_and_targets(model, batch)
        loss = self.loss(logits, y)
        valid = y != self.ignore_index if self.ignore_index is not None else torch.ones_like(y, dtype=torch.bool)
        accuracy = ((logits.detach().argmax(dim=1) == y) & valid).sum() / valid.sum().clamp_min(1)
        return StepOutput(loss, {"loss": loss.detach(), "pixel_accuracy": accuracy})

    # ----------------------------------------------------------------- metrics

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        logits, y = self.logits_and_targets(model, batch)
        return {
            "loss_sum": self.loss(logits, y).detach() * len(y),
            "examples": torch.tensor(len(y), device=y.device),
            "confusion": confusion_matrix(logits.argmax(dim=1), y, self.num_classes, self.ignore_index),
        }

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": float(totals["loss_sum"]) / max(int(totals["examples"]), 1), **segmentation_metrics(totals["confusion"])}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> Evaluation:
        totals = accumulate(self, model, batches)
        iou, dice = class_scores(totals["confusion"])
        arrays = {"confusion_matrix": totals["confusion"].long().numpy(), "class_iou": iou.numpy(), "class_dice": dice.numpy()}
        return Evaluation(self.reduce(totals), arrays)

    # ----------------------------------------------------------------- what a trained run does

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``label_map`` (B, H, W) class ids and ``probabilities`` (B, K, H, W) of the per-pixel softmax."""
        probabilities = model(inputs).float().softmax(dim=1)
        return {"label_map": probabilities.argmax(dim=1), "probabilities": probabilities}

    def export_inputs(self, batch: Any) -> ExportInputs:
        """``model(images)`` with images (B, C, H, W); the batch dimension is dynamic (the sides are traced)."""
        return ExportInputs((batch[0],), ("input",), ({0: "batch"},))

    def figures(
        self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Evaluation | None = None,
    ) -> list[Path]:
        """The pixel confusion matrix of an evaluation (``confusion-<split>.png``) and the first images of the
        split's first batch with their true and predicted masks over them (``segmentation-<split>.png``)."""
        from ..report import plot_confusion
        from ..report.segmentation import plot_segmentation

        names = list(self.meta.get("class_names") or [str(k) for k in range(self.num_classes)])
        out = []
        if evaluation is not None and "confusion_matrix" in evaluation.arrays:
            metrics = evaluation.metrics
            title = f"{folder.name} ({split})\npixels, mean IoU {metrics['mean_iou']:.3f}"  # two lines: a run id is long
            out.append(plot_confusion(evaluation.arrays["confusion_matrix"], names, folder / f"confusion-{split}.png", title))
        count = self.config.figure_images
        if batch is None or count == 0:
            return out
        x, y = batch[0][:count], batch[1][:count]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits, truth = self.logits_and_targets(model, (x, y))
        finally:
            model.train(was_training)
        mean = torch.tensor(self.meta.get("mean") or [0.0] * x.shape[1], dtype=torch.float32)[:, None, None]
        std = torch.tensor(self.meta.get("std") or [1.0] * x.shape[1], dtype=torch.float32)[:, None, None]
        images = (x.float().cpu() * std + mean).clamp(0, 1).numpy()
        path = folder / f"segmentation-{split}.png"
        title = f"{split}: image, true mask, predicted mask"
        out.append(plot_segmentation(images, truth.cpu().numpy(), logits.argmax(dim=1).cpu().numpy(), names, path, title,
                                     self.ignore_index))
        return out


TASKS.register(
    "segmentation", Segmentation, SegmentationConfig(), family="segmentation",
    doc="semantic segmentation: a class per pixel (cross-entropy, Dice, IoU losses; mean IoU, mean Dice)",
)
