"""Callbacks: side effects around the training loop (logging, progress, pruning).

The loop calls eight events. A callback can stop a run with
``trainer.request_stop(status, reason)``; the run then saves a checkpoint and
ends with that status (``completed`` for early stopping, ``pruned`` for a
search pruner, ``interrupted`` for a signal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from .trainer import FitResult, Trainer


class Callback:
    """Base class; override the events you need."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_train_step_end(self, trainer: Trainer) -> None: ...

    def on_log(self, trainer: Trainer, logs: dict[str, float]) -> None: ...

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trainer: Trainer, path: Path, kind: str) -> None: ...

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None: ...
