"""``deepatlas bench precision``: where bf16 autocast pays on this machine, and what ``train.precision: auto`` picks.

Our GPT (nanoGPT's CPU config, 128 wide, and the same 256 wide), our CIFAR ResNet-20 and the ddpm-fashion-mnist recipe's UNet (a DDPM
step) at several batch sizes, each trained on a
fixed batch (forward, loss, backward, fused AdamW step) in float32 and under bf16 autocast,
alternating rounds (bench.common). A row: the work of a step (forward + backward FLOPs, the
counter ``auto`` reads), both throughputs, the bf16 speed-up, and ``auto``'s choice
(engine.device.auto_precision: fast bf16 here, and at least the work where bf16 pays for that kind of
network, engine.device.cpu_bf16_min_flops). Where
the speed-up crosses 1 is this machine's threshold; ``auto`` is right where its choice and the
speed-up agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from ..engine.device import (
    BF16_MIN_FLOPS,
    CONV_BF16_MIN_FLOPS,
    WIDE_BF16_MIN_FLOPS,
    WIDE_LAYER,
    auto_channels_last,
    auto_precision,
    fast_bf16,
)
from . import resnet, transformer, unet
from .common import BF16, FLOAT32, Rounds, Setup, compare, flops_per_step

FUSED_FP32 = replace(FLOAT32, fused=True)
FUSED_BF16 = replace(BF16, fused=True)
EVEN = 0.03  # a bf16 speed-up within this of 1: the two precisions train as fast, either pick is right


@dataclass(frozen=True)
class PrecisionBench(Rounds):
    gpt_batches: tuple[int, ...] = (3, 12, 48)  # sequences of 64 tokens: 0.9, 3.7 and 15 GFLOP a step
    wide_gpt_batches: tuple[int, ...] = (2, 8)  # the GPT 256 wide: 2.4 and 9.7 GFLOP a step
    resnet_batches: tuple[int, ...] = (8, 32, 128)  # 32x32 images: 1.9, 7.8 and 31 GFLOP a step
    unet_batches: tuple[int, ...] = (16, 64)  # 28x28 images: 6.7 and 27 GFLOP a step
    calls: int = 3
    rounds: int = 3
    warmup: int = 2
    peak_n: int = 256  # the matmul peak only feeds MFU, which this table does not show (bf16 emulated at 2048^3 takes minutes)


def _models(b: PrecisionBench, device: torch.device) -> list[tuple[str, int, Any, int, str, bool]]:
    """(model, batch, build, units per step, unit, convolutional) for every row."""
    rows = []
    for n in b.gpt_batches:
        t = transformer.TransformerBench(batch_size=n)
        rows.append(("gpt 4x128", n, transformer.builder(t, device), n * t.block_size, "tokens", False))
    for n in b.wide_gpt_batches:
        t = transformer.TransformerBench(batch_size=n, n_embd=256)
        rows.append(("gpt 4x256", n, transformer.builder(t, device), n * t.block_size, "tokens", False))
    for n in b.resnet_batches:
        r = resnet.ResNetBench(cifar_batch_size=n)
        rows.append(("resnet20", n, resnet.builder(r, "resnet20", device), n, "images", True))
    for n in b.unet_batches:
        u = unet.UNetBench(batch_size=n)
        rows.append(("unet", n, unet.builder(u, device), n, "images", True))
    return rows


def run(bench: PrecisionBench | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """One row per model and batch size: GFLOP per step, float32 and bf16 throughput, speed-up, auto's pick."""
    b = bench or PrecisionBench()
    device = device or torch.device("cpu")
    out = []
    for model, batch, build, units, unit, conv in _models(b, device):
        first = build("ours", FLOAT32, 0)
        flops = flops_per_step(first)

        def ours(side: str, setup: Setup, seed: int, build: Any = build) -> Any:
            return build("ours", setup, seed)  # both sides are our model; the side name only labels the timing

        bf16 = replace(FUSED_BF16, channels_last=conv and auto_channels_last(first.model, torch.bfloat16))
        row = compare(ours, {"fp32": FUSED_FP32, "bf16": bf16}, units=units, unit=unit, rounds=b, device=device,
                      flops=int(flops))
        pick, _ = auto_precision(device, lambda flops=flops: flops, model=first.model)
        out.append({
            "model": model, "batch": batch, "gflop_per_step": flops / 1e9, "unit": unit,
            "fp32_per_s": row[f"fp32_{unit}_per_s"], "bf16_per_s": row[f"bf16_{unit}_per_s"],
            # compare's ratio is the second side's time over the first's: bf16's speed-up over float32 is its inverse
            "bf16_speedup": 1 / row["ratio"], "auto": pick, "spread": row["spread"],
            "agrees": (pick == "bf16") == (1 / row["ratio"] > 1),
            "even": abs(1 / row["ratio"] - 1) < EVEN,  # either choice is as fast
        })
    return out


def describe(device: torch.device) -> str:
    """The line above the table: whether this machine has fast bf16 and the threshold in force."""
    fast = "fast bf16 (AMX or AVX-512 BF16)" if fast_bf16(device) else "no fast bf16 (bf16 is emulated: auto keeps float32)"
    return (f"{device.type}: {fast}; auto picks bf16 from {CONV_BF16_MIN_FLOPS / 1e9:.2g} GFLOP per step for conv nets, "
            f"{WIDE_BF16_MIN_FLOPS / 1e9:.0f} for conv nets with GroupNorm and other nets at least {WIDE_LAYER} wide, "
            f"{BF16_MIN_FLOPS / 1e9:.0f} for narrower ones")
