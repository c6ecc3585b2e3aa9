"""The task interface: what a family does differently, behind one small contract.

The engine knows nothing of images, tokens or graphs. A task tells it, for a
batch, which optimizers step and in what order (``phases``: a classifier has
one, a GAN two), what the loss of each phase is (``training_step``), and how
validation batches become summable statistics and then metrics
(``validation_step`` + ``reduce``). Generation and sampling live here too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn


class StepOutput(NamedTuple):
    """The loss to back-propagate and detached tensors to log (no ``.item()`` inside a step)."""

    loss: torch.Tensor
    logs: Mapping[str, torch.Tensor]


class Evaluation(NamedTuple):
    """Final metrics of a split and arrays worth keeping (e.g. a confusion matrix)."""

    metrics: dict[str, float]
    arrays: dict[str, Any]


class Task(ABC):
    """Base class of every objective. Subclasses set ``monitor`` and implement three methods."""

    #: default validation metric for best-checkpoint selection and early stopping, and its direction
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        self.config = config
        self.meta = dict(meta)

    # ----------------------------------------------------------------- optimisation

    def parameters(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Parameters of each optimizer, by name. One optimizer (``main``) by default."""
        return {"main": [p for p in model.parameters() if p.requires_grad]}

    def lr_scales(self) -> dict[str, float]:
        """Multipliers of the scheduled lr per optimizer (e.g. a GAN's two time-scales); 1 when absent."""
        return {}

    def phases(self, step: int) -> Sequence[str]:
        """Optimizers stepped on the batch of optimizer step ``step``, in order."""
        return ("main",)

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        """The loss of ``phase`` on ``batch`` (model in train mode)."""

    # ----------------------------------------------------------------- validation

    @abstractmethod
    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Statistics of one batch that are summed over the split (model in eval mode, no grad)."""

    @abstractmethod
    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Metrics from the summed statistics of a whole split."""

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> Evaluation:
        """Metrics over a whole split; subclasses add arrays (confusion matrices, samples)."""
        return Evaluation(self.reduce(accumulate(self, model, batches)), {})

    # ----------------------------------------------------------------- helpers

    def batch_size(self, batch: Any) -> int:
        """Number of examples in a batch (for throughput)."""
        return len(batch[0])

    def ema_target(self, model: nn.Module) -> nn.Module:
        """The module whose weights are averaged when EMA is on (a GAN: the generator)."""
        return model


@torch.no_grad()
def accumulate(task: Task, model: nn.Module, batches: Iterable[Any]) -> dict[str, torch.Tensor]:
    """Sum ``task.validation_step`` over batches, in float64 where it matters."""
    totals: dict[str, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            for key, value in task.validation_step(model, batch).items():
                value = value.detach().double() if value.is_floating_point() else value.detach()
                totals[key] = totals[key] + value if key in totals else value
    finally:
        model.train(was_training)
    return {k: v.cpu() for k, v in totals.items()}
