"""FT-Transformer: a Transformer over one token per feature (Gorishniy, Rubachev, Khrulkov & Babenko 2021).

"Revisiting Deep Learning Models for Tabular Data" (NeurIPS 2021), section 3.3 and appendix.

- Feature Tokenizer (figure 2a): numeric feature j -> T_j = x_j W_j + b_j (W_j, b_j in R^d);
  categorical feature j with code c -> T_j = E_j[c] + b_j (a lookup table per column, code 0 the
  unknown slot, plus a per-feature bias). T = stack[T_1, ..., T_k] in R^{k x d}.
- A [CLS] token (a learned vector in R^d) joins the k feature tokens: T_0 in R^{(k+1) x d}.
- L Transformer blocks, PreNorm (figure 2b):
      x = x + Dropout_res(MHSA(LayerNorm(x)))         (attention dropout on the probabilities)
      x = x + Dropout_res(FFN(LayerNorm(x)))
      FFN(x) = Linear(Dropout_ffn(ReGLU(Linear(x)))),  ReGLU(a, b) = a * ReLU(b)   (Shazeer 2020)
  The first block has no LayerNorm before its attention: the tokenizer's output goes in as it is
  (the paper found removing this first normalisation necessary for good performance).
- The prediction from the final [CLS] representation: y = Linear(ReLU(LayerNorm(T_L^[CLS]))).

The default preset is the paper's "default FT-Transformer" (appendix; ``get_default_kwargs(3)`` of the reference):
d = 192, L = 3, 8 heads, attention dropout 0.2, FFN dropout 0.1, residual dropout 0.0,
d_ffn = d * 4/3 (ReGLU, so the first FFN layer outputs 2 * d_ffn), trained with AdamW
(lr 1e-4, weight decay 1e-5). Initialisation follows the reference implementation
(``rtdl_revisiting_models``): tokenizer weights, biases and [CLS] ~ U(-1/sqrt(d), 1/sqrt(d)),
attention biases zero, every other linear layer PyTorch's default.

Tokens carry no position: attention is permutation-equivariant, so the place of [CLS] in the
sequence does not change the output (the reference puts it first, we append it last). In the
last block only the [CLS] row feeds the head, so its residual and feed-forward network run on
that row alone (the reference goes further and queries attention with [CLS] only; same output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.attention import MultiHeadAttention
from ..registry import register_model
from ..schema import option
from .tabular import TabularInputs


class FeatureTokenizer(nn.Module):
    """(B, P) numbers and (B, C) codes -> (B, P + C, d) tokens, one per feature."""

    def __init__(self, num_numeric: int, cardinalities: tuple[int, ...], d_token: int) -> None:
        super().__init__()
        self.num_numeric, self.d_token = num_numeric, d_token
        self.numeric_weight = nn.Parameter(torch.empty(num_numeric, d_token))  # W_j, one row per feature
        self.numeric_bias = nn.Parameter(torch.empty(num_numeric, d_token))  # b_j
        self.embeddings = nn.ModuleList(nn.Embedding(n, d_token) for n in cardinalities)  # E_j
        self.categorical_bias = nn.Parameter(torch.empty(len(cardinalities), d_token))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.d_token)
        for tensor in (self.numeric_weight, self.numeric_bias, self.categorical_bias, *(e.weight for e in self.embeddings)):
            nn.init.uniform_(tensor, -bound, bound)

    def forward(self, x) -> torch.Tensor:
        tokens = [x.numeric[..., None] * self.numeric_weight + self.numeric_bias]  # (B, P, d)
        if self.embeddings:
            codes = torch.stack([emb(x.categorical[:, j]) for j, emb in enumerate(self.embeddings)], dim=1)
            tokens.append(codes + self.categorical_bias)  # (B, C, d)
        return torch.cat(tokens, dim=1)


def reglu(x: torch.Tensor) -> torch.Tensor:
    """ReGLU(a, b) = a * ReLU(b), with [a, b] the two halves of the last dimension."""
    a, b = x.chunk(2, dim=-1)
    return a * torch.relu(b)


class FTBlock(nn.Module):
    """One PreNorm block; ``first`` drops the LayerNorm before the attention, ``cls_only`` keeps the [CLS] row."""

    def __init__(self, d: int, n_heads: int, d_ffn: int, attention_dropout: float, ffn_dropout: float,
                 residual_dropout: float, activation: str, first: bool) -> None:
        super().__init__()
        self.attention_norm = nn.Identity() if first else nn.LayerNorm(d)
        self.attention = MultiHeadAttention(d, n_heads, dropout=attention_dropout)
        nn.init.zeros_(self.attention.qkv_proj.bias)
        nn.init.zeros_(self.attention.out_proj.bias)
        self.ffn_norm = nn.LayerNorm(d)
        self.glu = activation == "reglu"
        self.linear1 = nn.Linear(d, d_ffn * (2 if self.glu else 1))
        self.ffn_dropout = nn.Dropout(ffn_dropout)
        self.linear2 = nn.Linear(d_ffn, d)
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        h = self.residual_dropout(self.attention(self.attention_norm(x)))
        if cls_only:  # only the [CLS] row (the last) feeds the head
            x, h = x[:, -1:], h[:, -1:]
        x = x + h
        h = self.linear1(self.ffn_norm(x))
        h = reglu(h) if self.glu else torch.relu(h)
        return x + self.residual_dropout(self.linear2(self.ffn_dropout(h)))


@dataclass(frozen=True)
class FTTransformerConfig(TabularInputs):
    d_token: int = option(192, "d, the width of every feature token (a multiple of n_heads)", low=1)
    n_blocks: int = option(3, "Transformer blocks", low=1)
    n_heads: int = option(8, "attention heads", low=1)
    attention_dropout: float = option(0.2, "dropout on the attention probabilities", low=0.0, high=1.0)
    ffn_factor: float = option(4 / 3, "d_ffn = int(d_token * ffn_factor), the FFN's hidden width after the activation", low=0.01)
    ffn_dropout: float = option(0.1, "dropout after the FFN's activation", low=0.0, high=1.0)
    residual_dropout: float = option(0.0, "dropout of each sub-layer's output before it joins the residual stream", low=0.0, high=1.0)
    activation: Literal["reglu", "relu"] = option("reglu", "FFN activation (the paper: ReGLU)")


class FTTransformer(nn.Module):
    """FT-Transformer of Gorishniy et al. (2021): TabularBatch -> (B, num_outputs)."""

    def __init__(self, config: FTTransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.num_numeric + len(c.cardinalities) == 0:
            raise ConfigError("model: ft-transformer needs at least one feature (num_numeric and cardinalities are both empty); check the table's columns.")
        if c.d_token % c.n_heads:
            raise ConfigError(f"model.d_token: {c.d_token} is not a multiple of model.n_heads={c.n_heads}; pick d_token = k * n_heads.")
        self.tokenizer = FeatureTokenizer(c.num_numeric, tuple(c.cardinalities), c.d_token)
        self.cls = nn.Parameter(torch.empty(c.d_token))
        bound = 1.0 / math.sqrt(c.d_token)
        nn.init.uniform_(self.cls, -bound, bound)
        d_ffn = int(c.d_token * c.ffn_factor)
        self.blocks = nn.ModuleList(
            FTBlock(c.d_token, c.n_heads, d_ffn, c.attention_dropout, c.ffn_dropout, c.residual_dropout, c.activation, i == 0)
            for i in range(c.n_blocks)
        )
        self.norm = nn.LayerNorm(c.d_token)
        self.head = nn.Linear(c.d_token, c.num_outputs)

    def forward_features(self, x) -> torch.Tensor:
        tokens = self.tokenizer(x)  # (B, P + C, d)
        h = torch.cat([tokens, self.cls.expand(tokens.shape[0], 1, -1)], dim=1)  # [CLS] appended: (B, k + 1, d)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            h = block(h, cls_only=i == last)
        return torch.relu(self.norm(h[:, -1]))  # (B, d)

    def forward(self, x) -> torch.Tensor:
        return self.head(self.forward_features(x))  # (B, num_outputs)


register_model(
    "ft-transformer", FTTransformer, FTTransformerConfig(), family="tabular",
    doc="FT-Transformer (Gorishniy et al. 2021), the paper's default: 3 blocks, d=192, 8 heads, ReGLU FFN d_ffn=256",
)
