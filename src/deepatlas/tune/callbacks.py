"""Engine callbacks that tie a run to its Optuna trial: report and prune, and record the link.

Optuna stays outside the engine: the trainer only sees two ordinary callbacks. Pruning asks the
trainer to stop (``trainer.request_stop("pruned", ...)``), so a pruned run ends cleanly, with its
last checkpoint and ``status: pruned`` in its summary; the driver then tells the study PRUNED.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.callbacks import Callback
from ..errors import ConfigError
from ..io import write_json

if TYPE_CHECKING:
    from ..engine.trainer import Trainer


class MetricNotFound(ConfigError):
    """The objective names a metric the task does not report: every trial would fail the same way."""


class PruningCallback(Callback):
    """After each validation, report ``metric`` to ``trial`` at the epoch; stop the run if it should be pruned."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.metric not in metrics:
            raise MetricNotFound(
                f"search.metric: {self.metric!r} is not a validation metric of this task "
                f"(there are: {', '.join(sorted(metrics))})."
            )
        value = float(metrics[self.metric])
        epoch = trainer.state.epoch + 1  # validation runs before the epoch counter moves on
        if not math.isfinite(value):
            return  # Optuna cannot compare NaN; the run's own NaN check decides its fate
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.request_stop("pruned", f"pruned at epoch {epoch} ({self.metric} {value:.4g}) by the search's pruner")


class StopWhenAsked(Callback):
    """Stops the run at the next step boundary once ``asked()`` names a signal.

    A signal that reaches the study while no trainer handles signals (the trial's data loading, model
    building) sets the study's flag; this callback passes it on, so the trial's run ends as it would
    under the trainer's own handler: ``status: interrupted``, told to the study, no training wasted.
    """

    def __init__(self, asked: Callable[[], str | None]) -> None:
        self.asked = asked

    def on_fit_start(self, trainer: Trainer) -> None:
        self._check(trainer)

    def on_train_step_end(self, trainer: Trainer) -> None:
        self._check(trainer)

    def _check(self, trainer: Trainer) -> None:
        name = self.asked()
        if name is not None:
            trainer.request_stop("interrupted", f"stopped by {name} (the study was asked to stop)")


class TrialLink(Callback):
    """Writes ``trial.json`` into the run folder when training starts and names the run in the trial."""

    def __init__(self, trial: Any, info: dict[str, Any]) -> None:
        self.trial = trial
        self.info = info
        self.run_path: Path | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        # api.train keeps checkpoints in <run folder>/checkpoints: the folder is the run.
        folder = Path(trainer.checkpoint_dir).parent if trainer.checkpoint_dir else None
        if folder is None or not (folder / "config.yaml").is_file():
            return
        self.run_path = folder
        self.trial.set_user_attr("run_id", folder.name)
        self.trial.set_user_attr("run_path", str(folder.resolve()))
        write_json(folder / "trial.json", {**self.info, "trial": self.trial.number, "run_id": folder.name})

    def finish(self, **fields: Any) -> None:
        """Add the outcome (state, values) to ``trial.json``."""
        if self.run_path is not None:
            write_json(self.run_path / "trial.json", {
                **self.info, "trial": self.trial.number, "run_id": self.run_path.name, **fields,
            })
