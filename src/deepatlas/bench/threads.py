"""Training speed of the built-in recipes at several CPU thread counts, measured alternately.

Each recipe is trained for a short time at every thread count in turn
(1, 2, auto, 1, 2, auto, ...) in one process, so that the machine's load
drifts over all counts alike. A measurement skips the first optimizer steps
(lazy initialisation, allocator warm-up) and times the steps after them;
validation is switched off (``data.val_fraction=0``), so the number is the
seconds per optimizer step of the training loop. ``auto`` is the trainer's
default (``train.threads: null``), whose choice is recorded beside it.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..engine.callbacks import Callback
from ..engine.device import available_cores, batch_flops

if TYPE_CHECKING:
    from ..engine.trainer import Trainer

log = logging.getLogger(__name__)

# Recipes that only define a search space (their base recipe trains the same model).
SEARCH_ONLY = ("lenet5-fashion-mnist-search", "mlp-fashion-mnist-pareto")


class _StepTimer(Callback):
    """Times optimizer steps after ``warmup`` of them; stops the run after ``seconds`` (at least ``min_steps``)."""

    def __init__(self, warmup: int, seconds: float, min_steps: int, max_steps: int) -> None:
        self.warmup, self.seconds, self.min_steps, self.max_steps = warmup, seconds, min_steps, max_steps
        self.start: float | None = None
        self.steps = 0
        self.elapsed = 0.0
        self.threads = 0
        self.flops: float | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.threads = trainer.threads
        batch = next(iter(trainer.data.train_batches(0, trainer.train_config.seed, trainer.device)), None)
        self.flops = None if batch is None else batch_flops(trainer.model, trainer.task, batch)

    def on_train_step_end(self, trainer: Trainer) -> None:
        now = time.perf_counter()
        if self.start is None:
            if trainer.state.step >= self.warmup:
                self.start = now
            return
        self.steps += 1
        self.elapsed = now - self.start
        enough = self.steps >= self.min_steps and self.elapsed >= self.seconds
        if enough or self.steps >= self.max_steps:
            trainer.request_stop("completed", "benchmark time is up")


@dataclass
class RecipeTimes:
    """Seconds per optimizer step of one recipe, per thread setting, in measurement order."""

    recipe: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    auto_threads: int = 0
    flops: float | None = None  # per training micro-batch

    def median(self, setting: str) -> float:
        return statistics.median(self.seconds[setting])

    def ratios(self) -> dict[str, float]:
        """Median seconds per step over the best setting's (1.0 = the fastest)."""
        best = min(self.median(s) for s in self.seconds)
        return {s: self.median(s) / best for s in self.seconds}


def measure(
    recipe: str,
    settings: tuple[str, ...] = ("1", "2", "auto"),
    *,
    repeats: int = 3,
    seconds: float = 2.0,
    warmup: int = 3,
    runs_dir: str | Path | None = None,
) -> RecipeTimes:
    """Seconds per step of ``recipe`` at each thread setting, alternating settings ``repeats`` times."""
    # imported late: listing the benchmarks stays cheap
    from .. import api

    out = RecipeTimes(recipe, {s: [] for s in settings})
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for setting in settings:
                timer = _StepTimer(warmup, seconds, min_steps=3, max_steps=10_000)
                overrides = [
                    "train.device=cpu", "train.test=false", "data.val_fraction=0", "train.checkpoint_every=0",
                    f"train.threads={'null' if setting == 'auto' else setting}",
                ]
                api.train(recipe, overrides, runs_dir=runs_dir or tmp, callbacks=[timer], progress=False)
                out.seconds[setting].append(timer.elapsed / max(timer.steps, 1))
                out.flops = timer.flops
                if setting == "auto":
                    out.auto_threads = timer.threads
                log.info("%s threads=%s (%d): %.4f s/step over %d steps, load %.2f", recipe, setting,
                         timer.threads, out.seconds[setting][-1], timer.steps, os.getloadavg()[0])
    return out


def table(results: list[RecipeTimes]) -> str:
    """A Markdown table: median seconds per step and the ratio to the best setting, per recipe."""
    settings = list(results[0].seconds) if results else []
    head = "| recipe | GFLOP/batch | " + " | ".join(f"threads={s}" for s in settings) + " | auto chose |"
    lines = [head, "|---" * (len(settings) + 3) + "|"]
    for r in results:
        ratios = r.ratios()
        cells = [f"{r.median(s) * 1e3:.1f} ms ({ratios[s]:.2f}x)" for s in settings]
        flops = "?" if r.flops is None else f"{r.flops / 1e9:.2f}"
        lines.append(f"| {r.recipe} | {flops} | " + " | ".join(cells) + f" | {r.auto_threads} |")
    return "\n".join(lines)


def conditions() -> dict[str, Any]:
    """What the numbers depend on: cores, the load, torch's version."""
    return {"cpu_count": os.cpu_count(), "available_cores": available_cores(), "loadavg": os.getloadavg(),
            "torch": torch.__version__}
