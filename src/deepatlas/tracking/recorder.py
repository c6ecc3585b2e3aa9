"""The run recorder: writes what the engine reports into the run folder and index."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.callbacks import Callback
from ..io import write_text
from .compute import peak_memory_mb
from .energy import energy_report
from .store import Run

if TYPE_CHECKING:
    from ..engine.trainer import FitResult, Trainer


class RunRecorder(Callback):
    """Appends to ``metrics.jsonl`` and keeps ``summary.json`` and the index current."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.metrics_path = run.path / "metrics.jsonl"
        self._file: Any = None

    def _append(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def on_fit_start(self, trainer: Trainer) -> None:
        self._truncate(trainer)
        self._file = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole fit
        self.run.update_summary(status="running", reason="", pid=os.getpid(), **self._progress(trainer))

    def _truncate(self, trainer: Trainer) -> None:
        """On resume, drop what was written after the checkpoint so that no line repeats: lines of later
        steps, a line torn by a kill, and the end-of-epoch line of an epoch whose end the resumed run
        redoes (killed after that line but before the epoch's checkpoint)."""
        if not self.metrics_path.is_file():
            return
        s = trainer.state
        redo_epoch_end = s.batch_in_epoch >= trainer.num_batches
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line, half written when the process was killed
            step = row.get("step", 0)
            redone = redo_epoch_end and row.get("kind") == "epoch" and step == s.step and row.get("epoch") == s.epoch + 1
            if step <= s.step and not redone:
                kept.append(line)
        write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def on_log(self, trainer: Trainer, logs: dict[str, float]) -> None:
        s = trainer.state
        self._append({"kind": "log", "step": s.step, "epoch": s.epoch + 1, "time": time.time(), **logs})

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._append({"kind": "epoch", "time": time.time(), **metrics})
        self.run.update_summary(**self._progress(trainer))

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.run.update_summary(status=result.status, reason=result.reason, pid=None, **self._progress(trainer))

    def _progress(self, trainer: Trainer) -> dict[str, Any]:
        s, clock = trainer.state, trainer.clock
        wall_s = clock.wall_s  # read once: the clock runs on
        return {
            "best": trainer.best_summary(),
            "final": s.last_val,
            "progress": {
                "epoch": s.epoch, "epochs": trainer.epochs, "step": s.step, "total_steps": trainer.total_steps,
                "samples": s.samples,
            },
            "time": {
                "wall_s": round(wall_s, 3), "cpu_s": round(clock.cpu_s, 3),
                "samples_per_s": round(s.samples / wall_s, 2) if wall_s > 0 else None,
            },
            "energy": energy_report(clock.cpu_s, wall_s, trainer.device.type, clock.rapl_j),
            "peak_memory_mb": round(peak_memory_mb(trainer.device), 1),
            "checkpoints": {k: str(Path("checkpoints") / f"{k}.safetensors") for k in ("last", "best")},
        }
