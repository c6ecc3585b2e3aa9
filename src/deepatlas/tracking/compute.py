"""Compute accounting and the environment of a run: FLOPs, memory, versions, git."""

from __future__ import annotations

import logging
import os
import platform
import resource
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.device import step_flops

log = logging.getLogger(__name__)


def count_flops(build_model: Callable[[], nn.Module], task: Any, batch: Any) -> dict[str, float] | None:
    """FLOPs per example of a forward pass and of a training step (forward + backward).

    Counted by ``torch.utils.flop_counter`` (matrix multiplications and
    convolutions; element-wise work is not counted) on a copy of the model on
    the ``meta`` device, so nothing is computed and no state changes.
    """
    try:
        with torch.device("meta"):
            model = build_model()
        n = task.batch_size(batch)
        forward, backward = step_flops(model, task, batch)
        train = forward + backward
    except Exception as exc:  # counting is best effort: a model the meta device cannot run
        log.warning("could not count FLOPs: %s", exc)
        return None
    return {"forward_per_sample": forward / n, "train_per_sample": train / n}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss_kb / (2**20 if sys.platform == "darwin" else 2**10)


def git_info(path: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding ``path`` (None outside one)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, Any]:
    import numpy

    from .. import __version__

    info: dict[str, Any] = {
        "deepatlas": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "git": git_info(Path(__file__).resolve().parent),
    }
    return info
