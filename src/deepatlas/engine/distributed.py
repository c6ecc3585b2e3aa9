"""Training on several processes with ``torch.distributed``: what the engine needs and nothing more.

A run started by ``torchrun`` (or ``deepatlas train --nproc N``, which calls it) sees ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment; :func:`setup` joins the process group (gloo on
the CPU, NCCL on CUDA, with a timeout so that a dead process fails the run instead of hanging it).

Data parallelism, as in one process:

- every rank builds the same global batch (the seeded permutation, the same augmentation draws) and
  keeps its contiguous slice (:func:`shard_batch`): with the same global batch size the gradient that
  DistributedDataParallel averages is the one-process gradient of the whole batch, so the loss curve
  and the weights agree with one process to floating-point rounding (random ops inside the model,
  dropout, draw per rank);
- validation batches are dealt round-robin and the summable statistics of every rank are combined
  (:func:`combine_totals`): the metrics are those of the whole split;
- rank 0 alone writes the run store, metrics and checkpoints; each rank's RNG state goes into the
  checkpoint, so a resumed run continues exactly;
- a stop (a signal, early stopping, a search pruner) is agreed by every rank at the step it happens
  (:func:`agree`), so no rank is left waiting in a collective.

Tasks call their model through :class:`ModelProxy`: every method call (``model.masked_lm(x)``, not
only ``model(x)``) goes through DDP's forward, so its gradient hooks see it.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import logging
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes (size 1: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world() -> World:
    """The current process group's world (size 1 when none was joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def setup(device_type: str, timeout_s: float) -> World:
    """Join the process group torchrun described (once per process); the world of one when not launched."""
    import torch.distributed as dist

    if not launched():
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        _die_with_launcher()
        here = world()
        log.info("process %d of %d (%s backend)", here.rank, here.size, backend)
    return world()


def _die_with_launcher() -> None:
    """SIGTERM when the launcher dies (even by SIGKILL): the rank checkpoints and stops instead of running on orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def device_for(device: torch.device, here: World) -> torch.device:
    """One CUDA device per local rank; the CPU is shared."""
    if here.active and device.type == "cuda":
        return torch.device("cuda", here.local_rank)
    return device


# --------------------------------------------------------------------------- batches


def shard_batch(batch: Any, n: int, here: World) -> Any:
    """Rank r's contiguous slice of every tensor of ``batch`` whose first dimension is the batch size ``n``
    (tuples, lists, dicts and dataclasses are walked)."""
    if n % here.size:
        raise ConfigError(
            f"data.batch_size: a batch of {n} examples does not split evenly over {here.size} processes; "
            f"use a multiple of {here.size}."
        )
    per = n // here.size
    lo, hi = here.rank * per, (here.rank + 1) * per

    def cut(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value[lo:hi] if value.ndim and value.shape[0] == n else value
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*(cut(v) for v in value))
        if isinstance(value, (tuple, list)):
            return type(value)(cut(v) for v in value)
        if isinstance(value, Mapping):
            return {k: cut(v) for k, v in value.items()}
        if is_dataclass(value) and not isinstance(value, type):
            return replace(value, **{f.name: cut(getattr(value, f.name)) for f in fields(value) if f.init})
        return value

    return cut(batch)


def round_robin(batches: Iterator[Any], here: World) -> Iterator[Any]:
    """Batch i goes to rank i mod size."""
    for i, batch in enumerate(batches):
        if i % here.size == here.rank:
            yield batch


# --------------------------------------------------------------------------- collectives


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable Python objects; the process group's own transport, not files)."""
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def combine_totals(totals: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Validation statistics of the whole split: sums added over ranks, ``rows/`` concatenated in rank order."""
    parts = gather({k: v.cpu() for k, v in totals.items()})
    out: dict[str, torch.Tensor] = {}
    rows: dict[str, list[torch.Tensor]] = {}
    for part in parts:
        for key, value in part.items():
            if key.startswith("rows/"):
                rows.setdefault(key, []).append(value)
            else:
                out[key] = out[key] + value if key in out else value
    return {**out, **{k: torch.cat(v) for k, v in rows.items()}}


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any (one small all-reduce)."""
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def session(device_type: str, timeout_s: float) -> Iterator[World]:
    """The process group for a block: joined on entry; ended on exit by the block that joined it (a search
    keeps one group for all its trials, each trial's training leaves it open)."""
    owner = not _joined()
    here = setup(device_type, timeout_s)
    finished = False
    try:
        yield here
        finished = True
    finally:
        if owner and here.active:
            teardown(together=finished)


def _joined() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def teardown(together: bool = False) -> None:
    """End the process group. ``together`` (a block that finished normally on every rank): first wait
    for every rank, so that none closes its connections while a peer's last collective (a search's
    final "no more trials" broadcast) is still in flight. Objects that hold the group (a DDP reducer
    in a reference cycle) are collected first, so the group's C++ side and its threads end here, while
    the interpreter is whole, not in its finalisation (where gloo's threads can abort the process)."""
    import gc

    import torch.distributed as dist

    if _joined():
        gc.collect()
        if together:
            dist.barrier()
        dist.destroy_process_group()


# --------------------------------------------------------------------------- the model


class _Dispatch(nn.Module):
    """DDP's module: ``forward(name, *args)`` calls the model's method ``name`` (``__call__`` for forward)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs) if name == "forward" else getattr(self.model, name)(*args, **kwargs)


class ModelProxy:
    """What a task sees in place of its model: calls and the model's own methods (``masked_lm``, not
    ``nn.Module``'s) run through DDP (or FSDP's root module); attributes (``config``, submodules) are the model's."""

    def __init__(self, model: nn.Module, wrapped: nn.Module) -> None:
        self._model, self._wrapped = model, wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapped("forward", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._model, name)
        if callable(value) and not isinstance(value, nn.Module) and hasattr(type(self._model), name) and not hasattr(nn.Module, name):
            return lambda *args, **kwargs: self._wrapped(name, *args, **kwargs)
        return value

    def train(self, mode: bool = True) -> ModelProxy:
        self._model.train(mode)
        return self

    def eval(self) -> ModelProxy:
        return self.train(False)

    @property
    def training(self) -> bool:
        return self._model.training

    def modules(self) -> Iterator[nn.Module]:
        return self._model.modules()

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        return self._model.parameters(recurse)


def wrap(model: nn.Module, device: torch.device, strategy: str) -> tuple[nn.Module, ModelProxy]:
    """(the module whose gradients are synchronised, the proxy tasks call): DDP, or FSDP2's ``fully_shard``."""
    dispatch = _Dispatch(model)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in _blocks(model):
            fully_shard(block)
        fully_shard(dispatch)
        return dispatch, ModelProxy(model, dispatch)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    ddp = DistributedDataParallel(dispatch, device_ids=ids)
    return ddp, ModelProxy(model, ddp)


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks FSDP shards one at a time (the children of the model's ModuleLists)."""
    return [block for m in model.modules() if isinstance(m, nn.ModuleList) for block in m]


@contextlib.contextmanager
def no_sync(wrapped: nn.Module | None, accumulating: bool) -> Iterator[None]:
    """Skip DDP's gradient all-reduce on micro-batches before an accumulation boundary."""
    if wrapped is not None and accumulating and hasattr(wrapped, "no_sync"):
        with wrapped.no_sync():
            yield
        return
    yield
