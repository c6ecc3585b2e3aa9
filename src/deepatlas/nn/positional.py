"""Positional information for attention, which is otherwise order-blind.

- Sinusoidal (Vaswani et al. 2017, Section 3.5):
  PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
- Learned: a trainable vector per position (GPT, BERT, ViT).
- Rotary (RoPE; Su et al. 2021): rotate each pair of query/key features by an angle
  pos * theta_i, theta_i = base^(-2i/d), so that q.k depends on relative position only.
  Pairs are (x_i, x_{i+d/2}) ("rotate half", as in GPT-NeoX and LLaMA); the paper's
  interleaved pairs (x_{2i}, x_{2i+1}) are the same rotation up to a fixed feature permutation.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) table of the paper's sinusoidal encodings."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table


class SinusoidalPositions(nn.Module):
    """Fixed encodings added to the embeddings; ``forward(T, offset)`` -> (T, dim)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        return self.table[offset : offset + length]


class LearnedPositions(nn.Module):
    """A trainable embedding per position; ``forward(T, offset)`` -> (T, dim)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        if offset + length > self.weight.shape[0]:
            raise ValueError(f"sequence of {offset + length} positions exceeds the {self.weight.shape[0]} learned ones")
        return self.weight[offset : offset + length]


class Rotary(nn.Module):
    """Rotary embedding applied to (B, h, T, head_dim) queries or keys at positions offset..offset+T."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError("rotary embeddings need an even head dimension")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq[None, :]  # (T, hd/2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        t = x.shape[-2]
        cos = self.cos[offset : offset + t].to(x.dtype)
        sin = self.sin[offset : offset + t].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
