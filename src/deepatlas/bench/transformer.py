"""``deepatlas bench transformer``: training throughput of our GPT against Hugging Face GPT-2.

Both models have the same architecture and size (GPT-2 blocks: biases, tanh GELU,
learned positions, tied embeddings) at nanoGPT's CPU configuration by default
(4 layers, 4 heads, 128 wide, context 64, batch 12, vocabulary 65). A step is
forward, cross-entropy, backward and an AdamW update. Reported: tokens/s of each,
the ratio ours / Hugging Face in float32 and under bf16 autocast, and model
FLOPs utilisation (FLOPs counted by torch.utils.flop_counter, divided by the
measured matrix-multiplication peak of this machine in the same precision).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ..errors import DeepAtlasError
from ..registry import create_model
from .common import alternate, matmul_peak


@dataclass(frozen=True)
class TransformerBench:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 12
    vocab_size: int = 65
    calls: int = 20
    rounds: int = 5
    warmup: int = 10
    peak_n: int = 2048  # side of the square matmul that measures the machine's peak


def _models(b: TransformerBench, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    try:
        import transformers
    except ImportError:
        raise DeepAtlasError("bench transformer compares with Hugging Face: pip install 'deepatlas[bench]' (transformers).") from None
    torch.manual_seed(0)
    ours = create_model(
        "gpt2", vocab_size=b.vocab_size, block_size=b.block_size, n_layer=b.n_layer, n_head=b.n_head, n_embd=b.n_embd,
    ).to(device)
    config = transformers.GPT2Config(
        vocab_size=b.vocab_size, n_positions=b.block_size, n_embd=b.n_embd, n_layer=b.n_layer, n_head=b.n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(config).to(device)
    return ours, hf


def _step_fn(model: torch.nn.Module, hf: bool, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = (lambda: torch.autocast(x.device.type, dtype=dtype)) if dtype else contextlib.nullcontext

    def step() -> None:
        with autocast():
            logits = model(x).logits if hf else model(x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _flops_per_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def run(bench: TransformerBench | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """One row per precision: tokens/s of both, ratio, MFU of both."""
    b = bench or TransformerBench()
    device = device or torch.device("cpu")
    ours, hf = _models(b, device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, b.vocab_size, (b.batch_size, b.block_size), generator=gen).to(device)
    y = torch.randint(0, b.vocab_size, (b.batch_size, b.block_size), generator=gen).to(device)
    flops = _flops_per_step(ours, x, y)
    tokens = b.batch_size * b.block_size
    rows = []
    for label, dtype in (("float32", None), ("bf16 autocast", torch.bfloat16)):
        timing = alternate(
            {"ours": _step_fn(ours, False, x, y, dtype), "hf": _step_fn(hf, True, x, y, dtype)},
            calls=b.calls, rounds=b.rounds, warmup=b.warmup, device=device,
        )
        peak = matmul_peak(dtype or torch.float32, device, n=b.peak_n)
        t_ours, t_hf = timing.median("ours"), timing.median("hf")
        rows.append({
            "precision": label,
            "ours_tokens_per_s": tokens / t_ours,
            "hf_tokens_per_s": tokens / t_hf,
            "ratio": t_hf / t_ours,
            "ours_mfu": flops / t_ours / peak,
            "hf_mfu": flops / t_hf / peak,
            "peak_gflops": peak / 1e9,
            "spread": max(timing.spread("ours"), timing.spread("hf")),
        })
    return rows
