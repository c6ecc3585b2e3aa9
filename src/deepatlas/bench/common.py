"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Seconds for ``repeats`` calls of ``fn``."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return time.perf_counter() - start


@dataclass
class Alternating:
    """Median seconds per call of several contenders timed in alternating rounds."""

    seconds: dict[str, list[float]]

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def spread(self, name: str) -> float:
        values = self.seconds[name]
        return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


def alternate(contenders: dict[str, Callable[[], object]], *, calls: int, rounds: int, warmup: int, device: torch.device) -> Alternating:
    """Warm every contender up, then time ``calls`` calls of each per round, rotating the order."""
    for fn in contenders.values():
        time_call(fn, warmup, device)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(time_call(contenders[name], calls, device) / calls)
    return Alternating(seconds)


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Measured FLOP/s of a large square matrix product (the practical peak for MFU)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        best = min(best, time_call(lambda: a @ b, repeats, device) / repeats)
    return 2 * n**3 / best
