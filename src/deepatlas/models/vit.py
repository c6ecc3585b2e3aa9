"""The Vision Transformer (Dosovitskiy et al. 2021).

An image is cut into P x P patches, each linearly embedded (equation 1: a
strided P x P convolution); a learned [class] token is prepended and learned
position embeddings added; L pre-LN Transformer encoder layers (equations 2-3)
follow, then a LayerNorm, and the classifier reads the [class] token (equation 4).
ViT-B/16: 12 layers, 768 wide, 12 heads, MLP 3072, 86,567,656 parameters at 224x224
with 1000 classes.

CLIP's image tower (Radford et al. 2021) is the same network with three changes, each an
option here (off by default): a LayerNorm before the encoder (``pre_norm``, CLIP's ln_pre),
a patch embedding without bias (``patch_bias``) and QuickGELU (``activation``), with
LayerNorm epsilon 1e-5 (``norm_eps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.transformer import TransformerBlock
from ..registry import register_model
from ..schema import option
from .base import ImageClassifier


@dataclass(frozen=True)
class ViTConfig:
    patch_size: int = option(16, "side of the square patches in pixels", low=1)
    dim: int = option(768, "model width D", low=1)
    depth: int = option(12, "encoder layers L", low=1)
    heads: int = option(12, "attention heads", low=1)
    mlp_dim: int = option(3072, "feed-forward width", low=1)
    dropout: float = option(0.0, "dropout on embeddings and residual branches", low=0.0, high=1.0)
    attention_dropout: float = option(0.0, "dropout on attention weights", low=0.0, high=1.0)
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels (a multiple of patch_size)", low=1)
    activation: Literal["gelu", "quick-gelu"] = option("gelu", "feed-forward activation (CLIP's OpenAI models: quick-gelu)")
    pre_norm: bool = option(False, "a LayerNorm on the embedded tokens before the encoder (CLIP's ln_pre)")
    patch_bias: bool = option(True, "a bias in the patch embedding (CLIP: none)")
    norm_eps: float = option(1e-6, "LayerNorm epsilon (timm's ViT: 1e-6; CLIP: 1e-5)", low=0.0)

    def validate(self, path: str) -> None:
        if self.input_size % self.patch_size:
            raise ConfigError(
                f"{path}.patch_size: input_size {self.input_size} is not a multiple of patch_size {self.patch_size}."
            )
        if self.dim % self.heads:
            raise ConfigError(f"{path}.heads: dim ({self.dim}) must be divisible by heads ({self.heads}).")


class ViT(ImageClassifier):
    """``forward(images (B, C, H, W)) -> logits``; ``forward_features`` is the final [class] token."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = c = config
        n_patches = (c.input_size // c.patch_size) ** 2
        self.patch_embed = nn.Conv2d(c.in_channels, c.dim, c.patch_size, stride=c.patch_size, bias=c.patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, c.dim))
        self.dropout = nn.Dropout(c.dropout)
        self.norm_pre = nn.LayerNorm(c.dim, eps=c.norm_eps) if c.pre_norm else nn.Identity()
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.dim, c.heads, c.mlp_dim, dropout=c.dropout, attention_dropout=c.attention_dropout,
                activation=c.activation, norm_first=True, eps=c.norm_eps,
            )
            for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps)
        self.head = nn.Linear(c.dim, c.num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, N + 1, D)
        x = self.norm_pre(self.dropout(x + self.pos_embed))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]  # the [class] token, (B, D)


register_model("vit-b16", ViT, ViTConfig(), family="transformer", doc="ViT-B/16 (Dosovitskiy et al. 2021)")
register_model(
    "vit-l16", ViT, ViTConfig(dim=1024, depth=24, heads=16, mlp_dim=4096), family="transformer", doc="ViT-L/16",
)
register_model(
    "vit-mini", ViT,
    ViTConfig(patch_size=4, dim=128, depth=6, heads=4, mlp_dim=256, dropout=0.1, num_classes=10, input_size=28, in_channels=1),
    family="transformer", doc="a 6-layer, 128-wide ViT with 4x4 patches for 28x28 images",
)
