"""Progress you can see: a rich progress bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from .callbacks import Callback

if TYPE_CHECKING:
    from .trainer import FitResult, Trainer

log = logging.getLogger("deepatlas.train")

_SHOWN = ("loss", "accuracy", "grad_norm")
_EPOCH = ("loss", "accuracy", "nll", "macro_f1", "perplexity")


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plan_line(total_steps: int, epochs: int, steps_per_epoch: int, max_steps: int | None) -> str:
    """What the run will do: ``training 200 steps (max_steps; an epoch is 250 steps)`` or
    ``training 500 steps (2 epochs x 250 steps)``. With ``max_steps`` the epoch count is only where
    the steps run out, so it is not shown as a product that would not equal the total."""
    if max_steps is not None:
        return f"training {_count(total_steps, 'step')} (max_steps; an epoch is {_count(steps_per_epoch, 'step')})"
    return f"training {_count(total_steps, 'step')} ({_count(epochs, 'epoch')} x {_count(steps_per_epoch, 'step')})"


def format_metrics(metrics: dict[str, Any], keys: tuple[str, ...] | None = None) -> str:
    parts = []
    for key, value in metrics.items():
        if keys is not None and key.split("/")[-1] not in keys:
            continue
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}" if abs(value) < 1e4 else f"{key} {value:.3e}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """Step bar with epoch, samples/s, ETA, loss and metrics; plain lines when not a TTY.

    ``plain=None`` decides by whether stderr is a terminal; ``every_s`` limits
    how often plain lines are written.
    """

    def __init__(self, plain: bool | None = None, every_s: float = 10.0) -> None:
        self.plain = (not sys.stderr.isatty()) if plain is None else plain
        self.every_s = every_s
        self._progress: Any = None
        self._task: Any = None
        self._last_line = 0.0
        self._fields = {"epoch": "", "metrics": "", "speed": ""}

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.plain:
            plan = plan_line(trainer.total_steps, trainer.epochs, trainer.steps_per_epoch, trainer.train_config.max_steps)
            log.info("%s on %s", plan, trainer.device)
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=trainer.total_steps, completed=trainer.state.step, **self._fields
        )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._fields["epoch"] = f"{epoch + 1}/{trainer.epochs}"
        if self._progress is not None:
            self._progress.update(self._task, epoch=self._fields["epoch"])

    def on_train_step_end(self, trainer: Trainer) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=trainer.state.step)

    def on_log(self, trainer: Trainer, logs: dict[str, float]) -> None:
        speed = f"{logs['samples_per_s']:.0f} samples/s"
        metrics = format_metrics(logs, _SHOWN) + f"  lr {logs['lr']:.3g}"
        if self._progress is not None:
            self._progress.update(self._task, speed=speed, metrics=metrics)
        elif time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            log.info(
                "epoch %s step %d/%d  %s  %s  eta %s", self._fields["epoch"], trainer.state.step,
                trainer.total_steps, metrics, speed, format_duration(logs["eta_s"]),
            )

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        line = f"epoch {metrics['epoch']}/{trainer.epochs}  " + format_metrics(metrics, _EPOCH)
        if self._progress is not None:
            self._progress.console.print(line)
        else:
            log.info("%s", line)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def track(items: Any, description: str, total: int, enabled: bool = True, unit: str = "batches") -> Any:
    """Iterate ``items`` with a progress bar (rate, ETA) on a terminal, or a log line every 10 s otherwise."""
    if not enabled:
        yield from items
        return
    if sys.stderr.isatty():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, transient=True)
        return
    start = last = time.monotonic()
    for i, item in enumerate(items):
        yield item
        now = time.monotonic()
        if now - last >= 10.0 or i + 1 == total:
            last = now
            rate = (i + 1) / max(now - start, 1e-9)
            log.info("%s %d/%d %s  %.2f/s  eta %s", description, i + 1, total, unit, rate, format_duration((total - i - 1) / rate))
