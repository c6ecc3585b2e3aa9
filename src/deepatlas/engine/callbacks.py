"""Callbacks: side effects around the training loop (logging, progress, pruning).

The loop calls eight events. A callback can stop a run with
``trainer.request_stop(status, reason)``; the run then saves a checkpoint and
ends with that status (``completed`` for early stopping, ``pruned`` for a
search pruner, ``interrupted`` for a signal).

A callback whose state must survive a resume (a clock, an energy meter)
returns it from ``state_dict``; the trainer saves it in the ``last``
checkpoint under the callback's ``name`` and hands it back to
``load_state_dict`` when the run resumes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from .trainer import FitResult, Trainer


class Callback:
    """Base class; override the events you need."""

    name: str = ""  # the key of its state in checkpoints (empty: the class name)

    def state_dict(self) -> dict[str, Any] | None:
        """State to save in checkpoints (JSON values and tensors); None: nothing to save."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned, when a run resumes."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_train_step_end(self, trainer: Trainer) -> None: ...

    def on_log(self, trainer: Trainer, logs: dict[str, float]) -> None: ...

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trainer: Trainer, path: Path, kind: str) -> None: ...

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None: ...


def callback_name(callback: Callback) -> str:
    """The name a callback's state is saved under."""
    return callback.name or type(callback).__name__
