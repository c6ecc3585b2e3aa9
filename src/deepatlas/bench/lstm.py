"""``deepatlas bench lstm``: our explicit and fused LSTM (or GRU, or Elman RNN) paths against torch.nn.LSTM (GRU, RNN).

The three contenders have the same weights (copied from the torch module) and run the same
step: forward over a (B, T, in) batch, a scalar loss over outputs, backward. ``explicit``
runs the cell equations step by step (deepatlas.nn.recurrent); ``fused`` hands our
parameters to torch's kernels (cuDNN on GPU: the aten op torch's module calls); ``torch``
is torch.nn.LSTM (GRU, RNN) itself. Timed in alternating rounds after warm-up (bench.common);
reported: ms per step (medians) and the ratios torch / ours (> 1: ours is faster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..nn.recurrent import GATES, Recurrent, torch_class
from .common import alternate


@dataclass(frozen=True)
class LSTMBench:
    mode: str = "lstm"  # lstm, gru or rnn
    input_size: int = 220
    hidden_size: int = 220
    num_layers: int = 2
    seq_len: int = 64
    batch_size: int = 12
    bidirectional: bool = False
    calls: int = 10
    rounds: int = 5
    warmup: int = 3


def reference_class(mode: str) -> type[torch.nn.RNNBase]:
    """torch's module for ``mode`` (the bench's reference)."""
    if mode not in GATES:
        raise ConfigError(f"bench lstm --mode: {mode!r} is not a recurrent cell (allowed: {', '.join(GATES)}).")
    return torch_class(mode)  # type: ignore[arg-type]


def _step_fn(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        out, _ = module(x)
        out.square().mean().backward()
        module.zero_grad(set_to_none=True)

    return step


def run(bench: LSTMBench | None = None, device: torch.device | None = None) -> dict[str, Any]:
    """ms per forward+backward step of each contender, the ratios torch / ours and the noise spread."""
    b = bench or LSTMBench()
    device = device or torch.device("cpu")
    torch.manual_seed(0)
    reference = reference_class(b.mode)(b.input_size, b.hidden_size, b.num_layers, batch_first=True, bidirectional=b.bidirectional).to(device)
    ours = {
        impl: Recurrent(b.mode, b.input_size, b.hidden_size, b.num_layers, batch_first=True, bidirectional=b.bidirectional, impl=impl).to(device)
        for impl in ("explicit", "fused")
    }
    for module in ours.values():
        module.load_state_dict(reference.state_dict())
    x = torch.randn(b.batch_size, b.seq_len, b.input_size, device=device)
    contenders = {"explicit": _step_fn(ours["explicit"], x), "fused": _step_fn(ours["fused"], x), "torch": _step_fn(reference, x)}
    timing = alternate(contenders, calls=b.calls, rounds=b.rounds, warmup=b.warmup, device=device)
    ms = {name: 1000 * timing.median(name) for name in contenders}
    return {
        "explicit_ms": ms["explicit"],
        "fused_ms": ms["fused"],
        "torch_ms": ms["torch"],
        "explicit_ratio": ms["torch"] / ms["explicit"],
        "fused_ratio": ms["torch"] / ms["fused"],
        "tokens": b.batch_size * b.seq_len,
        "spread": max(timing.spread(name) for name in contenders),
    }
