"""The Transformer layer (Vaswani et al. 2017, Section 3.1), pre- or post-normalised.

Post-LN, the paper:  x = LayerNorm(x + Dropout(Sublayer(x)))
Pre-LN (GPT-2, ViT): x = x + Dropout(Sublayer(LayerNorm(x)))
Sub-layers: masked multi-head self-attention, optionally cross-attention over an
encoder's output (the decoder), and the position-wise feed-forward network
FFN(x) = act(x W_1 + b_1) W_2 + b_2 (equation 2, with ReLU in the paper, GELU in GPT/BERT/ViT,
and CLIP's QuickGELU x * sigmoid(1.702 x), Radford et al. 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import KVCache, MultiHeadAttention

ACTIVATIONS = ("relu", "gelu", "gelu-tanh", "quick-gelu")


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the sigmoid approximation of GELU that OpenAI's CLIP models were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def dropout_layer(p: float) -> nn.Module:
    """Dropout, or nothing at p = 0 (nn.Dropout(0) still does work in training mode)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


def ffn_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    if name == "gelu-tanh":  # GPT-2's approximation
        return nn.GELU(approximate="tanh")
    if name == "quick-gelu":
        return QuickGELU()
    raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")


class FeedForward(nn.Module):
    """Position-wise feed-forward network (equation 2)."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.act = ffn_activation(activation)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = dropout_layer(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.act(self.fc1(x))))


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, feed-forward; each with residual, dropout and LayerNorm."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        activation: str = "gelu",
        norm_first: bool = True,
        cross_attention: bool = False,
        bias: bool = True,
        eps: float = 1e-5,
        fused: bool = True,
    ) -> None:
        super().__init__()
        attn_drop = dropout if attention_dropout is None else attention_dropout
        self.norm_first = norm_first
        self.ln1 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=attn_drop, fused=fused)
        self.cross = None
        if cross_attention:
            self.ln_cross = nn.LayerNorm(d_model, eps=eps, bias=bias)
            self.cross = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=attn_drop, cross=True, fused=fused)
        self.ln2 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.ff = FeedForward(d_model, d_ff, activation, dropout, bias)
        self.dropout = dropout_layer(dropout)

    def _sublayer(self, x: torch.Tensor, norm: nn.Module, fn: object) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(fn(norm(x)))  # type: ignore[operator]
        return norm(x + self.dropout(fn(x)))  # type: ignore[operator]

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        memory_mask: torch.Tensor | None = None,
        rotary: nn.Module | None = None,
        cache: KVCache | None = None,
        memory_cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = self._sublayer(x, self.ln1, lambda h: self.attn(h, mask=mask, causal=causal, rotary=rotary, cache=cache, layer=layer))
        if self.cross is not None:
            x = self._sublayer(
                x, self.ln_cross, lambda h: self.cross(h, memory, mask=memory_mask, cache=memory_cache, layer=layer)
            )
        # the feed-forward output already went through dropout inside FeedForward
        if self.norm_first:
            return x + self.ff(self.ln2(x))
        return self.ln2(x + self.ff(x))
