"""Classification: cross-entropy with optional label smoothing (Szegedy et al., 2016).

L = -sum_k q_k log p_k with q = (1 - eps) onehot(y) + eps / K.
Validation reports accuracy, top-5 accuracy, macro-F1, NLL and ECE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K) logits and (B,) labels of a batch; graph tasks override this and nothing else."""
        x, y = batch
        return model(x), y

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


TASKS.register(
    "classification", Classification, ClassificationConfig(), family="classification",
    doc="cross-entropy classification (accuracy, top-5, macro-F1, NLL, ECE)",
)
