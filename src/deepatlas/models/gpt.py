"""GPT: a decoder-only Transformer language model (Radford et al. 2018, 2019).

Token and position embeddings, a stack of pre-LN causal self-attention blocks,
a final LayerNorm and a linear head onto the vocabulary whose weight is the
token embedding (weight tying, Press & Wolf 2017). Trained to maximise
sum_t log p(x_t | x_<t). GPT-2's initialisation: N(0, 0.02), with the residual
output projections scaled by 1/sqrt(2 n_layer).

Generation is incremental: a :class:`~deepatlas.nn.attention.KVCache` keeps the
keys and values of past positions so each new token costs one position of
compute; it gives exactly the tokens that full recomputation gives (tested).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn.attention import KVCache
from ..nn.positional import LearnedPositions, Rotary, SinusoidalPositions
from ..nn.transformer import TransformerBlock, dropout_layer
from ..registry import register_model
from ..schema import option


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = option(50257, "vocabulary size (from the tokenizer)", low=1)
    block_size: int = option(1024, "longest context in tokens", low=1)
    n_layer: int = option(12, "transformer blocks", low=1)
    n_head: int = option(12, "attention heads", low=1)
    n_embd: int = option(768, "model width", low=1)
    dropout: float = option(0.0, "dropout on embeddings, attention weights and residual branches", low=0.0, high=1.0)
    bias: bool = option(True, "biases in linear layers and LayerNorms (GPT-2: true)")
    positions: Literal["learned", "sinusoidal", "rotary"] = option("learned", "positional information")
    activation: Literal["gelu", "gelu-tanh", "relu"] = option("gelu-tanh", "feed-forward activation (GPT-2: tanh-approximate GELU)")
    norm: Literal["pre", "post"] = option("pre", "LayerNorm before (GPT-2) or after (the original Transformer) each sub-layer")
    tie_weights: bool = option(True, "share the token embedding with the output layer")
    fused_attention: bool = option(True, "use torch's fused attention kernels (false: the explicit formula)")

    def validate(self, path: str) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"{path}.n_head: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}).")


class GPT(nn.Module):
    """Decoder-only language model: ``forward(idx (B, T)) -> logits (B, T, vocab)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe: nn.Module | None = None
        self.rotary: nn.Module | None = None
        if c.positions == "learned":
            self.wpe = LearnedPositions(c.block_size, c.n_embd)
        elif c.positions == "sinusoidal":
            self.wpe = SinusoidalPositions(c.block_size, c.n_embd)
        else:
            self.rotary = Rotary(c.n_embd // c.n_head, c.block_size)
        self.drop = dropout_layer(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.n_embd, c.n_head, 4 * c.n_embd, dropout=c.dropout, activation=c.activation,
                norm_first=c.norm == "pre", bias=c.bias, fused=c.fused_attention,
            )
            for _ in range(c.n_layer)
        )
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias) if c.norm == "pre" else nn.Identity()
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self._init_weights()
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if p.ndim >= 2 and "wpe" not in name:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith("out_proj.weight") or name.endswith("fc2.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        t = idx.shape[1]
        offset = cache.length if cache is not None else 0
        if offset + t > self.config.block_size:
            raise ValueError(f"{offset + t} tokens exceed block_size {self.config.block_size}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(t, offset)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, causal=True, rotary=self.rotary, cache=cache, layer=i)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield (B,) new tokens one at a time after the prompt ``idx`` (B, T).

        ``temperature`` 0 is greedy decoding. When the context fills the block,
        the oldest positions are dropped (the cache is rebuilt from the window).
        """
        cache = KVCache() if use_cache else None
        context, pending = idx, idx  # the window of tokens seen; those not yet in the cache
        for _ in range(max_new_tokens):
            if context.shape[1] > self.config.block_size:  # slide the window; the cache starts afresh
                context = context[:, -self.config.block_size :]
                if cache is not None:
                    cache, pending = KVCache(), context
            logits = self(pending if cache is not None else context, cache=cache)[:, -1, :]  # (B, vocab)
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            yield nxt
            context = torch.cat([context, nxt[:, None]], dim=1)
            pending = nxt[:, None]


def sample_next(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample one token per row from logits (B, vocab) with temperature, top-k and nucleus (top-p) filtering."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_logits.softmax(dim=-1) > top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# --------------------------------------------------------------------------- presets

_GPT2 = GPTConfig()
register_model(
    "gpt-tiny", GPT,
    GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False, activation="gelu"),
    family="transformer", doc="nanoGPT's CPU configuration: 4 layers, 4 heads, 128 wide, context 64",
)
register_model(
    "gpt-mini", GPT,
    GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=False, activation="gelu"),
    family="transformer", doc="nanoGPT's Shakespeare-char model: 6 layers, 6 heads, 384 wide, context 256",
)
for _name, (_layers, _heads, _width) in {
    "gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024), "gpt2-large": (36, 20, 1280), "gpt2-xl": (48, 25, 1600),
}.items():
    register_model(
        _name, GPT, GPTConfig(n_layer=_layers, n_head=_heads, n_embd=_width), family="transformer",
        doc=f"GPT-2 ({_layers} layers, {_heads} heads, {_width} wide; Radford et al. 2019)",
    )
