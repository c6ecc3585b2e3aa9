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

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DeepAtlasError
from ..registry import create_model
from .common import Build, Contender, Rounds, Setup, adamw, same_settings


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
    bf16: bool | None = None  # the bf16 row: None where bf16 is fast (bench.common.with_bf16)


def _model(b: TransformerBench, side: str, device: torch.device) -> torch.nn.Module:
    if side == "ours":
        return create_model(
            "gpt2", vocab_size=b.vocab_size, block_size=b.block_size, n_layer=b.n_layer, n_head=b.n_head, n_embd=b.n_embd,
        ).to(device)
    try:
        import transformers
    except ImportError:
        raise DeepAtlasError("bench transformer compares with Hugging Face: pip install 'deepatlas[bench]' (transformers).") from None
    config = transformers.GPT2Config(
        vocab_size=b.vocab_size, n_positions=b.block_size, n_embd=b.n_embd, n_layer=b.n_layer, n_head=b.n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config).to(device)


def builder(b: TransformerBench, device: torch.device) -> Build:
    """``build(side, setup, seed)`` of our GPT (``ours``) and Hugging Face's (``hf``) on one fixed batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, b.vocab_size, (b.batch_size, b.block_size), generator=gen).to(device)
    y = torch.randint(0, b.vocab_size, (b.batch_size, b.block_size), generator=gen).to(device)

    def build(side: str, setup: Setup, seed: int) -> Contender:
        torch.manual_seed(seed)
        model = _model(b, side, device)

        def loss(m: torch.nn.Module) -> torch.Tensor:
            logits = m(x) if side == "ours" else m(x).logits
            return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())

        return Contender(model, loss, adamw(model, setup))

    return build


def run(bench: TransformerBench | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """One row per precision: tokens/s of both, ratio, MFU of both."""
    b = bench or TransformerBench()
    device = device or torch.device("cpu")
    rounds = Rounds(calls=b.calls, rounds=b.rounds, warmup=b.warmup, peak_n=b.peak_n, bf16=b.bf16)
    return same_settings(builder(b, device), ("ours", "hf"), units=b.batch_size * b.block_size, unit="tokens",
                         rounds=rounds, device=device)
