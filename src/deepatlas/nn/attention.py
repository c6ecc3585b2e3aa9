"""Scaled dot-product and multi-head attention (Vaswani et al., 2017), with a KV cache.

Equation (1):  Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V
Multi-head:    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
               head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

Two paths compute equation (1): :func:`reference_attention`, written out as in
the paper, and ``torch.nn.functional.scaled_dot_product_attention`` (fused
kernels: flash / memory-efficient / C++), used by default. Tests check that
they agree. Masks follow PyTorch's convention: a boolean mask is True where
attention is *allowed*; a float mask is added to the scores.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(t_q: int, t_k: int, device: torch.device | None = None) -> torch.Tensor:
    """(t_q, t_k) boolean mask: query i sees keys j <= i + (t_k - t_q) (bottom-right aligned).

    With a KV cache the queries are the last ``t_q`` positions of ``t_k``.
    """
    offset = t_k - t_q
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=offset)


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Equation (1) of the paper, step by step. q: (..., Tq, d), k, v: (..., Tk, d)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(dim=-1)
    if dropout > 0:
        weights = F.dropout(weights, p=dropout)
    return weights @ v  # (..., Tq, d)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
    """The weights softmax(q k^T / sqrt(d)) (..., Tq, Tk) that :func:`attention` applies, with its masks."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal:
        cm = causal_mask(q.shape[-2], k.shape[-2], q.device)
        scores = scores.masked_fill(~cm, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(dim=-1)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout: float = 0.0,
    fused: bool = True,
) -> torch.Tensor:
    """Equation (1) with an optional causal and/or explicit mask; fused kernels unless ``fused=False``."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    if causal and (mask is not None or not fused or t_q != t_k):
        cm = causal_mask(t_q, t_k, q.device)
        mask = cm if mask is None else (mask & cm if mask.dtype == torch.bool else mask.masked_fill(~cm, float("-inf")))
        causal = False
    if not fused:
        return reference_attention(q, k, v, mask, dropout)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)


class KVCache:
    """Keys and values of past positions, per layer, for incremental decoding.

    ``update(layer, k, v)`` appends the new positions' keys and values
    (B, h, T_new, d) and returns all of them; ``length`` is the number of
    positions cached so far (the position offset of the next token).
    """

    def __init__(self) -> None:
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    @property
    def length(self) -> int:
        """Positions cached before the current forward pass (layer 0 is updated first)."""
        return self.length_at(0) if 0 in self.keys else (next(iter(self.keys.values())).shape[-2] if self.keys else 0)

    def length_at(self, layer: int) -> int:
        """Positions cached for ``layer``: the position offset of its new queries."""
        return self.keys[layer].shape[-2] if layer in self.keys else 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer in self.keys:
            k = torch.cat([self.keys[layer], k], dim=-2)
            v = torch.cat([self.values[layer], v], dim=-2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions (e.g. to slide a context window)."""
        for layer in self.keys:
            self.keys[layer] = self.keys[layer][..., :length, :]
            self.values[layer] = self.values[layer][..., :length, :]

    def reorder(self, index: torch.Tensor) -> None:
        """Select batch rows (beam search keeps the surviving beams)."""
        for layer in self.keys:
            self.keys[layer] = self.keys[layer].index_select(0, index)
            self.values[layer] = self.values[layer].index_select(0, index)


class MultiHeadAttention(nn.Module):
    """Multi-head attention. Self-attention projects q, k, v with one packed matrix;
    cross-attention (``cross=True``) projects the queries from ``x`` and keys and
    values from ``memory``.

    Shapes: x (B, T, d_model), memory (B, S, d_model) -> (B, T, d_model).
    """

    def __init__(
        self, d_model: int, n_heads: int, *, bias: bool = True, dropout: float = 0.0, cross: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.cross, self.fused, self.dropout = cross, fused, dropout
        self.recorded: list[torch.Tensor] | None = None  # a list while explain.record_attention records
        if cross:
            self.q_proj = nn.Linear(d_model, d_model, bias=bias)
            self.kv_proj = nn.Linear(d_model, 2 * d_model, bias=bias)
        else:
            self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, h, T, hd)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        rotary: nn.Module | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        if self.cross:
            q = self._heads(self.q_proj(x))
            if cache is not None and layer in cache.keys:  # the encoder memory never changes: project it once
                k, v = cache.keys[layer], cache.values[layer]
            else:
                k, v = (self._heads(z) for z in self.kv_proj(memory).split(self.d_model, dim=-1))
                if cache is not None:
                    cache.update(layer, k, v)
        else:
            q, k, v = (self._heads(z) for z in self.qkv_proj(x).split(self.d_model, dim=-1))
            offset = cache.length_at(layer) if cache is not None else 0
            if rotary is not None:
                q, k = rotary(q, offset), rotary(k, offset)
            if cache is not None:
                k, v = cache.update(layer, k, v)
        dropout = self.dropout if self.training else 0.0
        if self.recorded is not None:  # deepatlas.explain.record_attention is listening: keep the weights
            self.recorded.append(attention_weights(q, k, mask, causal).detach())
        y = attention(q, k, v, mask=mask, causal=causal, dropout=dropout, fused=self.fused)  # (B, h, T, hd)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.d_model))


def padding_mask(key_padding: torch.Tensor) -> torch.Tensor:
    """(B, S) True-at-padding -> (B, 1, 1, S) boolean attention mask (True = attend)."""
    return ~key_padding[:, None, None, :]
