"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..engine.device import auto_channels_last, auto_precision, fast_bf16


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


# --------------------------------------------------------------------------- training steps side by side


@dataclass(frozen=True)
class Setup:
    """How one side trains: autocast precision, optimizer kernel, memory format, compilation."""

    label: str = "float32"
    dtype: torch.dtype | None = None  # autocast dtype (None: float32, no autocast)
    fused: bool | None = None  # the optimizer's fused kernel (None: torch's default, foreach)
    channels_last: bool = False  # NHWC model and inputs (convolutional models)
    compile: bool = False  # torch.compile the model

    def describe(self) -> str:
        parts = [self.label]
        if self.fused:
            parts.append("fused optimizer")
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("torch.compile")
        return ", ".join(parts)


FLOAT32 = Setup("float32")
BF16 = Setup("bf16 autocast", torch.bfloat16)
SAME_SETTINGS = (FLOAT32, BF16)


def our_defaults(device: torch.device, convolutional: bool = False, compile: bool = False, flops: float | None = None,
                 model: nn.Module | None = None) -> Setup:
    """Our side's defaults, as ``deepatlas train`` resolves them (engine.device.auto_precision,
    engine.optim's fused default): bf16 autocast where it pays (fast bf16, and on a CPU ``flops`` per
    step at least the threshold of ``model``'s kind), the fused optimizer, channels_last for conv nets under
    bf16 (engine.device.auto_channels_last: not those with GroupNorm)."""
    precision, _ = auto_precision(device, lambda: flops, model=model)
    bf16 = precision == "bf16"
    dtype = torch.bfloat16 if bf16 else None
    nhwc = auto_channels_last(model, dtype) if model is not None else convolutional and bf16
    return Setup("bf16 autocast" if bf16 else "float32", dtype, fused=True, channels_last=nhwc, compile=compile)


def defaults_for(build: Build, device: torch.device, convolutional: bool = False, compile: bool = False) -> Setup:
    """:func:`our_defaults` for the model ``build`` makes: its kind and FLOPs per step decide the precision, as in training."""
    ours = build("ours", FLOAT32, 0)
    return our_defaults(device, convolutional, compile, flops_per_step(ours), ours.model)


@dataclass
class Contender:
    """One side of a comparison: a model, the loss of its (fixed) training batch, and its optimizer."""

    model: nn.Module
    loss: Callable[[nn.Module], torch.Tensor]  # the loss of one training batch, given the (maybe compiled) model
    optimizer: torch.optim.Optimizer


# A benchmark builds each side: (side name, its Setup, seed) -> Contender, inputs already in the Setup's memory format.
Build = Callable[[str, Setup, int], Contender]


def adamw(model: nn.Module, setup: Setup, lr: float = 1e-4, **kwargs: Any) -> torch.optim.Optimizer:
    """AdamW over the model's parameters, with the fused kernel where the setup asks for it."""
    return torch.optim.AdamW(model.parameters(), lr=lr, fused=setup.fused, **kwargs)


def training_step(c: Contender, setup: Setup) -> Callable[[], torch.Tensor]:
    """One forward + loss + backward + optimizer step; returns the detached loss (no host sync)."""
    model = torch.compile(c.model) if setup.compile else c.model
    device = next(c.model.parameters()).device

    def step() -> torch.Tensor:
        context = torch.autocast(device.type, dtype=setup.dtype) if setup.dtype else contextlib.nullcontext()
        with context:
            loss = c.loss(model)
        loss.backward()
        c.optimizer.step()
        c.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def flops_per_step(c: Contender) -> int:
    """FLOPs of one forward + backward (float32), counted by torch.utils.flop_counter."""
    with FlopCounterMode(display=False) as counter:
        c.loss(c.model).backward()
    c.model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


@functools.cache
def cached_peak(dtype: torch.dtype, device: torch.device, n: int) -> float:
    """:func:`matmul_peak`, measured once per process and precision."""
    return matmul_peak(dtype, device, n=n)


@dataclass(frozen=True)
class Rounds:
    """How long to time: calls per round, alternating rounds, warm-up calls, the side of the peak matmul."""

    calls: int = 5
    rounds: int = 5
    warmup: int = 3
    peak_n: int = 2048
    bf16: bool | None = None  # the same-settings bf16 rows: None where bf16 is fast (see with_bf16)


def with_bf16(rounds: Rounds, device: torch.device) -> bool:
    """Whether the same-settings tables time bf16 autocast too: as asked, else only where bf16 is fast.

    Without AMX or AVX-512 BF16 a CPU emulates bf16 matrix products 10-13x slower than float32
    (docs/BENCHMARKS.md, "When bf16 pays"); nobody trains that way (train.precision: auto keeps
    float32 there), and timing it (with its bf16 matmul peak) takes many minutes to measure nothing.
    """
    return rounds.bf16 if rounds.bf16 is not None else fast_bf16(device)


def bf16_skipped(device: torch.device) -> str:
    """The line a benchmark prints where it leaves its bf16 rows out."""
    return (f"bf16 rows left out: this {device.type.upper()} has no fast bf16 (no AMX or AVX-512 BF16 on a CPU), "
            "so bf16 is emulated, 10x slower than float32, and deepatlas trains in float32 here "
            "(train.precision: auto); --bf16 times them anyway.")


def compare(
    build: Build, setups: dict[str, Setup], *, units: int, unit: str, rounds: Rounds, device: torch.device,
    label: str | None = None, flops: int | None = None,
) -> dict[str, Any]:
    """One row: ``{side}_{unit}_per_s`` and ``{side}_mfu`` of each side, the ratio second / first side's
    time (> 1: the first, ours, is faster; None with one side), the round-to-round spread and the peak.

    Each side trains under its own Setup; MFU divides the FLOPs of a step (counted once, on the first
    side in float32: the sides compute the same model) by the measured matmul peak of that side's precision.
    """
    contenders = {side: build(side, setup, 0) for side, setup in setups.items()}
    names = list(contenders)
    flops = flops if flops is not None else flops_per_step(contenders[names[0]])
    steps = {side: training_step(contenders[side], setups[side]) for side in names}
    timing = alternate(steps, calls=rounds.calls, rounds=rounds.rounds, warmup=rounds.warmup, device=device)
    row: dict[str, Any] = {"precision": label or " / ".join(dict.fromkeys(s.describe() for s in setups.values()))}
    for side in names:
        t = timing.median(side)
        row[f"{side}_{unit}_per_s"] = units / t
        row[f"{side}_mfu"] = flops / t / cached_peak(setups[side].dtype or torch.float32, device, rounds.peak_n)
    row["ratio"] = timing.median(names[1]) / timing.median(names[0]) if len(names) > 1 else None
    row["spread"] = max(timing.spread(side) for side in names)
    row["peak_gflops"] = cached_peak(setups[names[0]].dtype or torch.float32, device, rounds.peak_n) / 1e9
    row["flops_per_step"] = flops
    return row


def same_settings(build: Build, sides: tuple[str, ...], *, rounds: Rounds, device: torch.device, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`compare` rows with every side in float32, then every side under bf16 autocast (where
    :func:`with_bf16`)."""
    settings = SAME_SETTINGS if with_bf16(rounds, device) else (FLOAT32,)
    return [compare(build, dict.fromkeys(sides, setup), label=setup.label, rounds=rounds, device=device, **kwargs)
            for setup in settings]


def final_losses(build: Build, setups: dict[str, Setup], *, steps: int, seeds: tuple[int, ...] = (0, 1), tail: int = 5) -> dict[str, list[float]]:
    """A short training run per side and seed: the mean loss of its last ``tail`` steps (the noise of one
    step's loss averaged out); side by side, speed must not be bought with accuracy."""
    out: dict[str, list[float]] = {}
    for side, setup in setups.items():
        for seed in seeds:
            step = training_step(build(side, setup, seed), setup)
            losses = [step() for _ in range(steps)]
            out.setdefault(side, []).append(float(torch.stack(losses[-tail:]).float().mean()))
    return out


def loss_verdict(losses: dict[str, list[float]]) -> dict[str, Any]:
    """Mean final loss per side, the seed-to-seed noise (the largest spread of one side over its seeds)
    and whether the sides' means differ by no more than twice that noise."""
    means = {side: statistics.fmean(v) for side, v in losses.items()}
    noise = max(max(v) - min(v) for v in losses.values())
    gap = max(means.values()) - min(means.values())
    return {"means": means, "noise": noise, "gap": gap, "equal": gap <= 2 * noise}
