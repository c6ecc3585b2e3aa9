"""Devices, numeric precision and CPU threads."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA, then MPS, then CPU; otherwise check the device exists."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} asked for, but no CUDA device is available (use auto or cpu).")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"train.device: {name!r}, but only {torch.cuda.device_count()} CUDA device(s) exist.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.device: 'mps' asked for, but MPS is not available (use auto or cpu).")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: full fp32)."""
    if precision in ("fp32", "auto"):  # auto: resolved by the trainer (auto_precision); float32 until then
        return None
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("train.precision: fp16 autocast needs a GPU; on the CPU use bf16.")
    return torch.bfloat16 if precision == "bf16" else torch.float16


# The work per training micro-batch (forward + backward FLOPs) from which bf16 autocast trains
# faster than float32 on a CPU with fast bf16 (AMX or AVX-512 BF16). It depends on the kind of
# network more than on its size; measured side by side with `deepatlas bench precision` (and GPTs of
# other widths through bench.common.compare) on an Intel Xeon with AMX, 2 threads (docs/BENCHMARKS.md,
# "When bf16 pays"), bf16 speed-up by GFLOP a step:
# - conv nets: ResNet-20 (BatchNorm, channels_last) 1.24x at 0.5, 1.42x at 1.0, 1.48x at 1.9, 1.9x
#   at 7.8, 2.2x at 31: from CONV_BF16_MIN_FLOPS;
# - conv nets with GroupNorm: the DDPM UNet (NCHW, see auto_channels_last) 0.98x at 0.8, 0.97x at 1.7,
#   1.12x at 6.7, 1.36x at 27: from WIDE_BF16_MIN_FLOPS;
# - transformers and MLPs whose layers are at least WIDE_LAYER wide: GPT 4x256 0.86x at 1.2, 0.94x
#   at 2.4, 1.19x at 4.9, 1.29x at 9.7, 1.52x at 39; 4x192 1.02x at 5.5, 1.16x at 22; 6x384 1.15x at
#   8.2; 4x512 1.34x at 9.7: from WIDE_BF16_MIN_FLOPS;
# - narrower ones, where the sequence length decides as much as the work: GPT 4x128 at 64 tokens a
#   sequence 0.70x at 0.9, 0.78x at 3.7, 0.88x at 15, 0.90x at 29; at 256 tokens 1.03x at 2.4, 1.19x
#   at 9.8, 1.33x at 39; BERT-mini (4x128, 128 tokens) 1.22x at 23: from BF16_MIN_FLOPS, which keeps
#   each miss small (at most the 0.9x at 29 and the 1.19x at 9.8).
BF16_MIN_FLOPS = 1.5e10
WIDE_BF16_MIN_FLOPS = 4e9
CONV_BF16_MIN_FLOPS = 5e8
WIDE_LAYER = 192


def is_conv_net(model: nn.Module) -> bool:
    """Whether convolutions make up the network (LeNet, ResNets, VGG, the UNets), not only its input stem (the
    patch embedding of a ViT, CLIP or MAE): it has at least two convolution layers."""
    return sum(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()) >= 2


def layer_width(model: nn.Module) -> int:
    """The median width of the linear layers (the smaller of each one's inputs and outputs): a transformer's
    model dimension, an MLP's hidden width; 0 without linear layers."""
    widths = sorted(min(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear))
    return widths[len(widths) // 2] if widths else 0


def cpu_bf16_min_flops(model: nn.Module | None) -> tuple[float, str]:
    """The work per micro-batch from which bf16 pays on a CPU with fast bf16, and the kind of network
    that sets it (see the measurements above)."""
    if model is None:
        return BF16_MIN_FLOPS, "this network"
    if is_conv_net(model):
        if any(isinstance(m, nn.GroupNorm) for m in model.modules()):
            return WIDE_BF16_MIN_FLOPS, "a conv net with GroupNorm"
        return CONV_BF16_MIN_FLOPS, "a conv net"
    width = layer_width(model)
    if width >= WIDE_LAYER:
        return WIDE_BF16_MIN_FLOPS, f"layers {width} wide"
    return BF16_MIN_FLOPS, f"layers {width} wide (below {WIDE_LAYER})"


def auto_channels_last(model: nn.Module, dtype: torch.dtype | None) -> bool:
    """``train.channels_last: null``: NHWC for conv nets under bf16, except those with GroupNorm. Measured
    (docs/BENCHMARKS.md): ResNet-20 under bf16 trains 1.16-1.19x faster in NHWC; the DDPM UNet under
    bf16 0.94-0.96x as fast as in float32 NCHW, against 1.24-1.52x in NCHW (GroupNorm's NHWC kernel)."""
    return (dtype == torch.bfloat16 and is_conv_net(model)
            and not any(isinstance(m, nn.GroupNorm) for m in model.modules()))


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products are fast here: CUDA with bf16 support, or a CPU with AMX or AVX-512 BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def bf16_blocker(model: nn.Module | None) -> str | None:
    """Why ``auto`` keeps ``model`` in float32 whatever the work (None: it need not): recurrent layers
    (torch.nn's, or any module with ``keeps_float32``). torch's fused RNN runs oneDNN's RNN primitive on
    the CPU, which refuses bf16 autocast inputs, and the explicit one would round its state every step."""
    if model is not None and any(isinstance(m, nn.RNNBase) or getattr(m, "keeps_float32", False) for m in model.modules()):
        return "recurrent layers stay in float32 (no bf16 CPU kernel for torch's LSTM/GRU; a state rounded at every step)"
    return None


def auto_precision(
    device: torch.device, flops_per_batch: Callable[[], float | None], low_precision_ok: bool = True,
    model: nn.Module | None = None,
) -> tuple[str, str]:
    """``train.precision: auto``: ``(precision, why)``, bf16 where it pays, float32 elsewhere.

    bf16 autocast when the device has fast bf16, the task tolerates it (``Task.low_precision_ok``:
    not the likelihood fits of the statistical tasks nor the sparse graph tasks) and, on a CPU, the
    model has a bf16 kernel for every layer (:func:`bf16_blocker`) and a micro-batch carries at
    least the work where bf16 pays for its kind of network (:func:`cpu_bf16_min_flops`).
    ``flops_per_batch`` is called only where that last test decides.
    """
    if not low_precision_ok:
        return "fp32", "auto: this task trains in float32"
    if not fast_bf16(device):
        return "fp32", f"auto: no fast bf16 on {device.type}"
    blocker = bf16_blocker(model)
    if blocker:
        return "fp32", f"auto: {blocker}"
    if device.type == "cuda":
        return "bf16", "auto: CUDA with bf16"
    threshold, kind = cpu_bf16_min_flops(model)
    flops = flops_per_batch()
    if flops is None:
        return "fp32", "auto: the work per batch could not be counted"
    work = f"{flops / 1e9:.2g} GFLOP per batch"
    if flops < threshold:
        return "fp32", f"auto: {work}, below the {threshold / 1e9:.2g} GFLOP where bf16 pays for {kind}"
    return "bf16", f"auto: CPU with fast bf16, {work}"


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


# The work per training micro-batch (forward + backward FLOPs) that makes a second thread pay
# off; measured in docs/BENCHMARKS.md ("Threads"): on idle cores a LeNet-5 batch (0.29 GFLOP)
# already trains 1.5x faster on two threads, the quickstart MLP (0.03 GFLOP) no faster. Below
# it, an op is too short to split: every parallel region waits for its slowest thread. Busy
# cores are left alone whatever the work (``auto_threads``): there the waiting thread waits for
# a scheduler slice (milliseconds), and every model trains several times slower on all cores.
FLOPS_PER_THREAD = 1e8


def _cgroup_quota(root: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 ``cpu.max``, v1 ``cfs_quota_us``); None: no limit."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    candidates: list[tuple[Path, str]] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":  # v2: one unified hierarchy
            candidates += [(root / rel / "cpu.max", "v2"), (root / "cpu.max", "v2")]
        elif "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                candidates += [(root / mount / rel, "v1"), (root / mount, "v1")]
    limits = []
    for path, version in candidates:
        try:
            if version == "v2":
                quota, period = path.read_text().split()[:2]
            else:
                quota = (path / "cpu.cfs_quota_us").read_text().strip()
                period = (path / "cpu.cfs_period_us").read_text().strip()
        except (OSError, ValueError):
            continue
        if quota not in ("max", "-1") and int(period) > 0:
            limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def available_cores(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Cores this process may use: its CPU affinity, capped by its cgroup's CPU quota (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota(root, proc_cgroup)
    if quota is not None:  # a quota of 1.5 cores throttles a second busy thread: round down
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def _running_threads(loadavg: Path, own_tasks: Path) -> int | None:
    """Runnable threads of other processes at this instant (``/proc/loadavg`` less this process's)."""
    try:
        running = int(loadavg.read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    own = 0
    for stat in own_tasks.glob("*/stat"):
        with contextlib.suppress(OSError, IndexError):
            own += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
    return max(0, running - own)


def busy_cores(
    samples: int = 5, interval_s: float = 0.02,
    loadavg: Path = Path("/proc/loadavg"), own_tasks: Path = Path("/proc/self/task"),
) -> float:
    """How many of this process's cores other processes keep busy now (median of a few samples; 0: unknown).

    Runnable threads are counted machine-wide (in a container, over the host's CPUs),
    so the count is scaled by the share of the machine's CPUs this process may use.
    """
    counts = []
    for i in range(samples):
        if i:
            time.sleep(interval_s)
        count = _running_threads(loadavg, own_tasks)
        if count is None:
            return 0.0
        counts.append(count)
    share = available_cores() / max(os.cpu_count() or 1, 1)
    return statistics.median(counts) * min(share, 1.0)


def auto_threads(cores: int, flops_per_batch: float | None, busy: float = 0.0) -> int:
    """The default thread count: one per ``FLOPS_PER_THREAD`` of work per micro-batch, on the idle cores.

    ``busy`` cores (other processes running now) are left alone: a thread that must wait
    for one of them stalls every parallel op. Unknown work (FLOPs not counted) uses every
    idle core, as torch would.
    """
    idle = max(1, round(cores - busy))
    wanted = idle if flops_per_batch is None else int(flops_per_batch // FLOPS_PER_THREAD)
    return max(1, min(idle, wanted))


def configure_threads(threads: int | None, deterministic: bool, flops_per_batch: Callable[[], float | None]) -> int:
    """Set torch's intra-op threads (``threads``, or :func:`auto_threads` when None); returns the count.

    ``flops_per_batch`` is called only when the count is chosen automatically.
    """
    if threads is None:
        cores = available_cores()
        flops = flops_per_batch() if cores > 1 else None
        one_is_enough = cores == 1 or (flops is not None and flops < 2 * FLOPS_PER_THREAD)
        busy = 0.0 if one_is_enough else busy_cores()  # sampling the load takes ~0.1 s
        threads = auto_threads(cores, flops, busy)
        work = "?" if flops is None else f"{flops / 1e9:.2g}"
        how = f"auto: {cores} core(s) available, {busy:.1f} busy, {work} GFLOP per batch"
    else:
        how = "train.threads"
    set_threads(threads)
    log.info("CPU threads: %d (%s)", threads, how)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    return threads


def set_threads(threads: int) -> None:
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def step_flops(meta_model: nn.Module, task: Any, batch: Any) -> tuple[float, float]:
    """(forward, backward) FLOPs of one training step of a model already on the ``meta`` device.

    Counted by ``torch.utils.flop_counter`` (matrix products and convolutions; element-wise work
    is not counted); nothing is computed. Raises what the model raises on the meta device.
    """
    meta_batch = tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) else t, batch)
    task = copy.deepcopy(task)  # a task may carry state from batch to batch (Task.state_dict): leave it alone
    meta_model.train()
    with FlopCounterMode(display=False) as counter:
        losses = [task.training_step(meta_model, meta_batch, phase).loss for phase in task.phases(0)]
    forward = float(counter.get_total_flops())
    with FlopCounterMode(display=False) as counter:
        for loss in losses:
            loss.backward(retain_graph=True)
    return forward, float(counter.get_total_flops())


def batch_flops(model: nn.Module, task: Any, batch: Any) -> float | None:
    """FLOPs of one training micro-batch (forward + backward), counted on a meta-device copy of ``model``.

    Nothing is computed and no state (weights, statistics, RNG) changes; None when the model
    cannot run on the meta device.
    """
    try:
        with torch.random.fork_rng(devices=[]):
            forward, backward = step_flops(copy.deepcopy(model).to("meta"), task, batch)
    except Exception as exc:  # best effort: a model the meta device cannot run
        log.debug("could not count the FLOPs per batch: %s", exc)
        return None
    return forward + backward
