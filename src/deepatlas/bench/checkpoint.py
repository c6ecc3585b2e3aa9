"""What the checkpoint content hash costs: save and load with and without it, side by side.

A ResNet-50 (25.6M parameters, about 102 MB in fp32) state dict is written with
:func:`~deepatlas.engine.checkpoint.save_checkpoint` without a hash, with
blake2b and with sha256, and each file is read back with
:func:`~deepatlas.engine.checkpoint.load_checkpoint` (a file without a hash
loads unverified). The variants run in alternating rounds, so the machine's
load drifts over all alike; the result is the median of the rounds in ms and
the ratio to the variant without a hash. The files go to the system's
temporary folder (usually a disk, so the page cache, not the disk, is timed).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ..engine.checkpoint import load_checkpoint, save_checkpoint

ALGORITHMS: tuple[str | None, ...] = (None, "blake2b", "sha256")


def checkpoint_hash_cost(model: str = "resnet50", rounds: int = 5, folder: str | Path | None = None) -> dict[str, Any]:
    """``{"params": n, "mb": size, "save": {variant: {"ms", "ratio"}}, "load": {...}}`` (variant ``none`` has no hash)."""
    import deepatlas

    state = {"model": deepatlas.create_model(model).state_dict()}
    params = sum(t.numel() for t in state["model"].values() if t.is_floating_point())
    times: dict[str, dict[str, list[float]]] = {"save": {}, "load": {}}
    quiet = logging.getLogger("deepatlas.engine.checkpoint")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # loading the file without a hash warns each time
    try:
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            paths = {_name(a): Path(tmp) / f"{_name(a)}.safetensors" for a in ALGORITHMS}
            for _ in range(rounds):
                for algorithm in ALGORITHMS:
                    name = _name(algorithm)
                    t0 = time.perf_counter()
                    save_checkpoint(paths[name], state, sidecar=False, algorithm=algorithm)
                    t1 = time.perf_counter()
                    load_checkpoint(paths[name])
                    t2 = time.perf_counter()
                    times["save"].setdefault(name, []).append((t1 - t0) * 1e3)
                    times["load"].setdefault(name, []).append((t2 - t1) * 1e3)
            mb = paths["none"].stat().st_size / 1e6
    finally:
        quiet.setLevel(level)
    out: dict[str, Any] = {"model": model, "params": params, "mb": round(mb, 1), "rounds": rounds}
    for op, variants in times.items():
        base = statistics.median(variants["none"])
        out[op] = {
            name: {"ms": round(statistics.median(ms), 1), "ratio": round(statistics.median(ms) / base, 2)}
            for name, ms in variants.items()
        }
    return out


def _name(algorithm: str | None) -> str:
    return algorithm or "none"
