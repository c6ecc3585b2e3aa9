"""Experiment tracking: the run store, its index and compute accounting."""

from .compute import count_flops, environment, peak_memory_mb
from .recorder import RunRecorder
from .store import Run, RunStore

__all__ = ["Run", "RunRecorder", "RunStore", "count_flops", "environment", "peak_memory_mb"]
