"""Classification: cross-entropy with optional label smoothing (Szegedy et al., 2016).

L = -sum_k q_k log p_k with q = (1 - eps) onehot(y) + eps / K.
Validation reports accuracy, top-5 accuracy, macro-F1, NLL and ECE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..metrics import classification_metrics, classification_stats
from ..registry import TASKS
from ..schema import option
from .base import Evaluation, StepOutput, Task, accumulate


@dataclass(frozen=True)
class ClassificationConfig:
    label_smoothing: float = option(0.0, "label smoothing epsilon of the training loss", low=0.0, high=1.0)
    topk: int = option(5, "k of the top-k accuracy", low=1)
    ece_bins: int = option(15, "confidence bins of the expected calibration error", low=1)


class Classification(Task):
    monitor = ("accuracy", "max")
    directions: ClassVar[Mapping[str, str]] = {"accuracy": "max", "macro_f1": "max", "nll": "min", "ece": "min"}
    capabilities = frozenset({"predict"})
    predicts = "labels"
    data_kind = "labelled"

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        classes = meta.get("num_classes")
        if isinstance(classes, int) and classes < 2:  # a generative task may train on one class; a classifier not
            names = ", ".join(repr(n) for n in meta.get("class_names") or [])
            raise DataError(
                f"data: only one class ({names or classes}); a classifier needs at least two "
                "(for an image folder: one sub-folder per class)."
            )
        # the preset k on fewer classes is clamped (top-5 of 3 classes); a k the user chose must make sense
        if isinstance(classes, int) and config.topk > classes and config.topk != ClassificationConfig().topk:
            raise ConfigError(
                f"task.topk: {config.topk} is more than the {classes} classes of the data (allowed: 1..{classes}); "
                f"set task.topk={min(5, classes)} or lower."
            )

    @classmethod
    def metric_directions(cls, config: Any = None) -> dict[str, str]:
        topk = config.topk if config is not None else ClassificationConfig().topk
        return {**cls.directions, f"top{topk}_accuracy": "max"}

    def model_meta(self) -> dict[str, Any]:
        """A network with ``num_outputs`` (a tabular one) outputs one logit per class."""
        classes = self.meta.get("num_classes")
        return {"num_outputs": classes} if isinstance(classes, int) else {}

    def logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        """(B, K) logits of a batch's inputs; graph tasks override this and ``logits_and_targets``."""
        return model(inputs)

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K) logits and (B,) labels of a batch."""
        x, y = batch
        return self.logits(model, x), y

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``label`` (B,) and ``probabilities`` (B, K) of the softmax."""
        probabilities = torch.softmax(self.logits(model, inputs).float(), dim=-1)
        return {"label": probabilities.argmax(-1), "probabilities": probabilities}

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        logits, y = self.logits_and_targets(model, batch)  # (B, K), (B,)
        loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
        return StepOutput(loss, {"loss": loss.detach(), "accuracy": accuracy})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        logits, y = self.logits_and_targets(model, batch)
        return classification_stats(logits, y, topk=self.config.topk, bins=self.config.ece_bins)

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return classification_metrics(totals, topk=self.config.topk)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> Evaluation:
        totals = accumulate(self, model, batches)
        arrays = {
            "confusion_matrix": totals["confusion"].long().numpy(),
            "calibration": {
                "count": totals["bin_count"].numpy(),
                "confidence": totals["bin_confidence"].numpy(),
                "correct": totals["bin_correct"].numpy(),
            },
        }
        return Evaluation(self.reduce(totals), arrays)

    def figures(
        self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Evaluation | None = None,
    ) -> list[Path]:
        """The confusion matrix and the reliability diagram of an evaluation."""
        if evaluation is None or "confusion_matrix" not in evaluation.arrays:
            return []
        from ..report import plot_confusion, plot_reliability

        confusion = evaluation.arrays["confusion_matrix"]
        names = self.meta.get("class_names") or [str(i) for i in range(len(confusion))]
        return [
            plot_confusion(confusion, names, folder / f"confusion-{split}.png", f"{folder.name} ({split})"),
            plot_reliability(evaluation.arrays["calibration"], folder / f"reliability-{split}.png", f"{split} calibration"),
        ]


TASKS.register(
    "classification", Classification, ClassificationConfig(), family="classification",
    doc="cross-entropy classification (accuracy, top-5, macro-F1, NLL, ECE)",
)
