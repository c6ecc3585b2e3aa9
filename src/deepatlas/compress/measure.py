"""What a (compressed) network costs: parameters, non-zeros, size, FLOPs and CPU latency, measured the same way
for every variant so that rows of one table compare.

- parameters: elements of the float parameters (a quantized network: those of the float network it came
  from, now int8); non-zeros: of the weights that pruning acts on (convolutions and linear layers).
- size: bytes of the serialized state dict (``torch.save`` into memory: the one format that holds float,
  pruned and int8 tensors alike), and of the same bytes gzip-compressed (what unstructured sparsity saves
  once the zeros are compressed).
- FLOPs per example of a forward pass: ``torch.utils.flop_counter`` (matrix multiplications and
  convolutions) on the float network; ``sparse_flops`` counts each convolution and linear layer at the
  density of its weight (what a sparse kernel would do, which PyTorch's dense kernels do not).
- latency: wall-clock milliseconds of one forward pass (eval, no grad, fp32, CPU) at a batch size, the
  median of ``repeats`` timed calls after warm-up; the variants are timed in turn, round by round, so that
  a machine that gets busier slows them all alike.
"""

from __future__ import annotations

import gzip
import io
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

PRUNABLE = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Footprint:
    params: int
    nonzero: int  # non-zero elements of the prunable weights
    prunable: int  # elements of the prunable weights
    size_bytes: int
    size_gzip_bytes: int
    flops: float | None  # forward FLOPs per example (dense kernels)
    sparse_flops: float | None  # the same at each layer's weight density

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.prunable if self.prunable else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sparsity": self.sparsity}


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every convolution and linear layer: the weights pruning acts on."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]


def state_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def count_flops(model: nn.Module, args: Sequence[torch.Tensor]) -> tuple[float | None, float | None]:
    """(dense, sparse) forward FLOPs per example of ``model(*args)`` (args hold one or more examples)."""
    from torch.utils.flop_counter import FlopCounterMode

    layer_flops: dict[nn.Module, float] = {}

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        per_out = module.weight[0].numel() if isinstance(module, nn.Conv2d) else module.in_features
        layer_flops[module] = layer_flops.get(module, 0.0) + 2.0 * output.numel() * per_out

    handles = [m.register_forward_hook(hook) for _, m in prunable_weights(model)]
    n = len(args[0])
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(*args)
        dense = float(counter.get_total_flops())
    except Exception:  # a network the counter cannot run (a quantized one): counted on its float parent
        return None, None
    finally:
        for h in handles:
            h.remove()
    saved = sum(f * (1.0 - float((m.weight != 0).float().mean())) for m, f in layer_flops.items())
    return dense / n, (dense - saved) / n


def footprint(model: nn.Module, args: Sequence[torch.Tensor] | None = None, *, params: int | None = None) -> Footprint:
    """The costs of ``model``; ``params`` overrides the count (a quantized network: its float parent's)."""
    weights = [m.weight for _, m in prunable_weights(model) if isinstance(getattr(m, "weight", None), torch.Tensor)]
    raw = state_bytes(model)
    flops, sparse = count_flops(model, args) if args is not None else (None, None)
    return Footprint(
        params=params if params is not None else sum(p.numel() for p in model.parameters()),
        nonzero=int(sum(int((w != 0).sum()) for w in weights)),
        prunable=int(sum(w.numel() for w in weights)),
        size_bytes=len(raw),
        size_gzip_bytes=len(gzip.compress(raw, compresslevel=6)),
        flops=flops,
        sparse_flops=sparse,
    )


@torch.no_grad()
def latency(
    models: Mapping[str, Callable[..., Any]], example: Callable[[int], Sequence[torch.Tensor]],
    batch_sizes: Sequence[int] = (1, 64), repeats: int = 30, warmup: int = 3, threads: int | None = 1,
) -> dict[str, dict[int, float]]:
    """Median milliseconds per forward pass of each model at each batch size; ``example(n)`` gives the inputs
    of a batch of ``n``. ``threads``: torch's intra-op threads while timing (None: leave as is)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        out: dict[str, dict[int, float]] = {name: {} for name in models}
        for n in batch_sizes:
            args = tuple(example(n))
            for model in models.values():
                for _ in range(warmup):
                    model(*args)
            times: dict[str, list[float]] = {name: [] for name in models}
            for _ in range(repeats):
                for name, model in models.items():  # round-robin: load on the machine hits every model alike
                    start = time.perf_counter()
                    model(*args)
                    times[name].append((time.perf_counter() - start) * 1000.0)
            for name in models:
                out[name][n] = statistics.median(times[name])
        return out
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def evaluate(model: nn.Module, task: Any, data: Any, split: str = "test") -> dict[str, float]:
    """The task's metrics of ``model`` (eval, fp32, CPU) on ``split`` of the data."""
    return task.evaluate(model.eval(), data.eval_batches(split, torch.device("cpu"))).metrics


__all__ = ["Footprint", "count_flops", "evaluate", "footprint", "latency", "prunable_weights", "state_bytes"]
