"""``deepatlas bench all``: every family against its reference, in the two tables of issue 19.

(a) **Same settings on both sides**: each family's step (bench.transformer, bert, unet, resnet,
    gnn, lstm) in float32 and under bf16 autocast (where bf16 is fast, or asked for: an emulated bf16
    row measures nothing a user trains with), the same optimizer kernel on both sides.
    Goal: every ratio (reference time / ours) >= 1.0.
(b) **Each side's defaults**: ours as deepatlas trains by default where it pays
    (bench.common.our_defaults, the trainer's own resolution of train.precision/channels_last
    and optim.fused: bf16 autocast where it pays, i.e. a CPU with AMX or AVX-512 BF16 and at least
    the work per step where bf16 pays for that kind of network (engine.device.cpu_bf16_min_flops); the fused optimizer; channels_last for conv nets under bf16; torch.compile
    only with ``compile=True``, see docs/BENCHMARKS.md), the reference as its documentation
    recommends (:data:`REFERENCE_DEFAULTS`). Goal: >= 1.3x for GPT, ResNet and UNet training.
    Beside each row, a short training run (``loss_steps`` steps on the benchmark's fixed batch,
    two seeds per side) shows the final loss of both sides equal within the seed-to-seed noise,
    so that speed is not bought with accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DeepAtlasError
from . import bert, resnet, transformer, unet
from .common import (
    Build,
    Rounds,
    Setup,
    bf16_skipped,
    compare,
    defaults_for,
    final_losses,
    loss_verdict,
    same_settings,
    with_bf16,
)

# What each reference's own documentation has a user train with (CPU, one process).
REFERENCE_DEFAULTS: dict[str, tuple[Setup, str]] = {
    "hf": (Setup("float32", fused=True),
           "transformers' Trainer defaults: bf16=False, optim adamw_torch_fused (its default with torch >= 2.8)"),
    "diffusers": (Setup("float32"),
                  "diffusers' train_unconditional.py defaults: --mixed_precision no, torch.optim.AdamW"),
    "torchvision": (Setup("float32"),
                    "torchvision references/classification/train.py defaults: no --amp, no channels_last, SGD"),
}
REFERENCE_NAMES = {"hf": "Hugging Face", "diffusers": "diffusers", "torchvision": "torchvision", "pyg": "PyG",
                   "torch": "torch.nn.LSTM"}


@dataclass(frozen=True)
class Family:
    """One row family: how to build its two sides, the reference's side name, the unit of throughput."""

    name: str
    reference: str
    unit: str
    make: Callable[[torch.device], tuple[Build, int]]  # device -> (build, units per step)
    convolutional: bool = False
    goal_defaults: float | None = None  # the goal for table (b)


def _gpt(**size: Any) -> Callable[[torch.device], tuple[Build, int]]:
    def make(device: torch.device) -> tuple[Build, int]:
        b = transformer.TransformerBench(**size)
        return transformer.builder(b, device), b.batch_size * b.block_size
    return make


def _bert(device: torch.device) -> tuple[Build, int]:
    b = bert.BertBench()
    return bert.builder(b, device), b.batch_size * b.seq_len


def _unet(device: torch.device) -> tuple[Build, int]:
    b = unet.UNetBench()
    return unet.builder(b, device), b.batch_size


def _resnet(name: str) -> Callable[[torch.device], tuple[Build, int]]:
    def make(device: torch.device) -> tuple[Build, int]:
        b = resnet.ResNetBench()
        return resnet.builder(b, name, device), resnet.batch_shape(b, name)[0]
    return make


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("gpt", "hf", "tokens", _gpt(), goal_defaults=1.3),
    Family("gpt-6x384", "hf", "tokens", _gpt(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=4), goal_defaults=1.3),
    Family("bert", "hf", "tokens", _bert),
    Family("unet", "diffusers", "images", _unet, convolutional=True, goal_defaults=1.3),
    Family("resnet20", "torchvision", "images", _resnet("resnet20"), convolutional=True),
    Family("resnet20-b", "torchvision", "images", _resnet("resnet20-b"), convolutional=True, goal_defaults=1.3),
    Family("resnet18", "torchvision", "images", _resnet("resnet18"), convolutional=True, goal_defaults=1.3),
    Family("resnet50", "torchvision", "images", _resnet("resnet50"), convolutional=True, goal_defaults=1.3),
)}
TABLE_B = ("gpt", "gpt-6x384", "bert", "unet", "resnet20-b", "resnet18")


@dataclass(frozen=True)
class Suite(Rounds):
    families: tuple[str, ...] = tuple(FAMILIES)
    defaults_families: tuple[str, ...] = TABLE_B
    extras: bool = True  # table (a) also runs bench gnn (Cora, synthetic) and bench lstm
    loss_steps: int = 30
    seeds: tuple[int, ...] = (0, 1)
    compile: bool = False  # our defaults with torch.compile


def _sides(f: Family) -> tuple[str, ...]:
    if f.reference == "torchvision":
        return resnet.sides(f.name)
    return ("ours", f.reference)


def _row(f: Family, r: dict[str, Any], table: str) -> dict[str, Any]:
    """A compare() row in the suite's common shape."""
    ref = f.reference if f"{f.reference}_mfu" in r else None
    return {
        "table": table, "family": f.name, "reference": REFERENCE_NAMES[f.reference] if ref else None,
        "setting": r["precision"], "unit": f.unit,
        "ours_per_s": r[f"ours_{f.unit}_per_s"], "reference_per_s": r.get(f"{ref}_{f.unit}_per_s") if ref else None,
        "ratio": r["ratio"], "ours_mfu": r["ours_mfu"], "reference_mfu": r.get(f"{ref}_mfu") if ref else None,
        "spread": r["spread"],
        "goal": (f.goal_defaults or 1.0) if table == "b" else 1.0,
    }


def _extras(s: Suite, device: torch.device) -> list[dict[str, Any]]:
    """Table (a) rows of bench gnn (GCN, GAT and GraphSAGE on Cora and on the synthetic dense-feature graph,
    vs PyG) and bench lstm (vs torch.nn.LSTM and torch.nn.GRU), float32."""
    from . import gnn, lstm

    rows: list[dict[str, Any]] = []
    for dataset in ("cora", gnn.SYNTHETIC):
        try:
            bench = gnn.GNNBench(datasets=(dataset,), calls=s.calls, rounds=s.rounds, warmup=s.warmup)
            for r in gnn.run(bench, device):
                rows.append({"table": "a", "family": f"{r['model']} ({r['dataset']})", "reference": "PyG",
                             "setting": "float32", "unit": "epochs", "ours_per_s": 1e3 / r["ours_ms"],
                             "reference_per_s": 1e3 / r["pyg_ms"], "ratio": r["ratio"], "ours_mfu": None,
                             "reference_mfu": None, "spread": r["spread"], "goal": r["goal"]})
        except DeepAtlasError as exc:  # no PyG or no Planetoid files: say so, go on
            rows.append({"table": "a", "family": f"gcn/gat/graphsage ({dataset})", "skipped": str(exc)})
    for mode in ("lstm", "gru"):
        r = lstm.run(lstm.LSTMBench(mode=mode, calls=s.calls, rounds=s.rounds, warmup=s.warmup), device)
        rows.append({"table": "a", "family": f"{mode} (fused)", "reference": f"torch.nn.{mode.upper()}", "setting": "float32",
                     "unit": "tokens", "ours_per_s": r["tokens"] / r["fused_ms"] * 1e3,
                     "reference_per_s": r["tokens"] / r["torch_ms"] * 1e3, "ratio": r["fused_ratio"], "ours_mfu": None,
                     "reference_mfu": None, "spread": r["spread"], "goal": 1.0})
    return rows


def run(suite: Suite | None = None, device: torch.device | None = None, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """``{"same": rows of table (a), "defaults": rows of table (b), "skipped": [messages]}``."""
    s = suite or Suite()
    device = device or torch.device("cpu")
    skipped = [f"{name}: {resnet.torchvision_missing()}" for name in dict.fromkeys((*s.families, *s.defaults_families))
               if FAMILIES[name].reference == "torchvision" and len(_sides(FAMILIES[name])) == 1 and name != "resnet20"]
    if s.families and not with_bf16(s, device):
        skipped.append(bf16_skipped(device))
    same, defaults = [], []
    for name in s.families:
        f = FAMILIES[name]
        sides = _sides(f)
        say(f"(a) {name}")
        build, units = f.make(device)
        same += [_row(f, r, "a") for r in same_settings(build, sides, units=units, unit=f.unit, rounds=s, device=device)]
    if s.extras:
        say("(a) gnn, lstm")
        same += _extras(s, device)
    for name in s.defaults_families:
        f = FAMILIES[name]
        say(f"(b) {name}")
        build, units = f.make(device)
        setups = {"ours": defaults_for(build, device, f.convolutional, s.compile)}
        if len(_sides(f)) > 1:
            setups[f.reference] = REFERENCE_DEFAULTS[f.reference][0]
        row = _row(f, compare(build, setups, units=units, unit=f.unit, rounds=s, device=device), "b")
        row["setting"] = " | ".join(setup.describe() for setup in setups.values())
        if s.loss_steps:
            row["loss"] = loss_verdict(final_losses(build, setups, steps=s.loss_steps, seeds=s.seeds))
        defaults.append(row)
    return {"same": same, "defaults": defaults, "skipped": skipped,
            "reference_defaults": {k: v[1] for k, v in REFERENCE_DEFAULTS.items()}}
