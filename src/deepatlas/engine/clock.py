"""What a run costs: training wall time, process CPU time and measured energy, summed over sessions.

A stateful callback: the totals of earlier sessions come back from the
checkpoint (:meth:`ComputeClock.load_state_dict`), and the current session
adds to them from ``on_fit_start`` to ``on_fit_end``. The totals are read
live (properties), so a checkpoint or a summary written mid-run is current.
The trainer installs one first among its callbacks, as ``trainer.clock``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .callbacks import Callback
from .energy import RAPL, open_meter

if TYPE_CHECKING:
    from .trainer import FitResult, Trainer


class ComputeClock(Callback):
    """Wall seconds, CPU seconds and RAPL joules (None: not measured) of every session of a run."""

    name = "clock"

    def __init__(self, energy: str | None = None) -> None:
        """``energy``: auto, estimate or rapl (None: $DEEPATLAS_ENERGY, else auto); see :func:`open_meter`."""
        self._meter: RAPL | None = open_meter(energy)
        self._before = {"wall_s": 0.0, "cpu_s": 0.0, "rapl_j": None}  # totals of the earlier sessions
        self._session: tuple[float, float, float] | None = None  # wall, CPU, joules when this session began

    # ----------------------------------------------------------------- sessions

    def start(self) -> None:
        """Begin (or restart) a session: time from now on adds to the totals."""
        joules = self._meter.update() if self._meter is not None else 0.0
        self._session = (time.perf_counter(), time.process_time(), joules)

    def stop(self) -> None:
        """End the session: its time joins the totals and stops growing."""
        self._before = self.state_dict()
        self._session = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.start()

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        self.stop()

    # ----------------------------------------------------------------- the totals

    @property
    def wall_s(self) -> float:
        extra = time.perf_counter() - self._session[0] if self._session else 0.0
        return self._before["wall_s"] + extra

    @property
    def cpu_s(self) -> float:
        extra = time.process_time() - self._session[1] if self._session else 0.0
        return self._before["cpu_s"] + extra

    @property
    def rapl_j(self) -> float | None:
        """Measured CPU package energy; None when no session had a RAPL meter."""
        before = self._before["rapl_j"]
        if self._meter is None or self._session is None:
            return before
        return (before or 0.0) + self._meter.update() - self._session[2]

    # ----------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "rapl_j": self.rapl_j}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the totals of earlier sessions (a running session restarts from now)."""
        self._before = {"wall_s": float(state.get("wall_s") or 0.0), "cpu_s": float(state.get("cpu_s") or 0.0),
                        "rapl_j": state.get("rapl_j")}
        if self._session is not None:
            self.start()
