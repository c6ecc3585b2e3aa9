"""CLIP: contrastive language-image pre-training (Radford et al. 2021).

Two encoders map an image and a caption into one d-dimensional space:

    I_f = image_encoder(I)        # a ViT's [class] token (or a CNN's pooled features)
    T_f = text_encoder(T)         # a causal Transformer's state at the end-of-text token
    I_e = l2_normalize(I_f W_i)   # linear projections without bias
    T_e = l2_normalize(T_f W_t)
    logits = exp(t) * I_e T_e^T   # (n, n), t a learned log-temperature

The temperature is initialised to 0.07 (t = log(1/0.07)) and the scale exp(t) is clipped
at 100 "to prevent training instability" (Section 2.5). The symmetric InfoNCE loss on these
logits (the survey seed's equation (8)) is :func:`deepatlas.nn.losses.clip_loss`.

The image tower is the ViT of :mod:`deepatlas.models.vit` with CLIP's options (a LayerNorm
before the encoder, a patch embedding without bias, QuickGELU for OpenAI's models), or any
registered image classifier (``image_encoder=resnet20``, ``lenet5``...) whose
``forward_features`` are projected. The text tower is GPT-2-like: token and learned position
embeddings, pre-LN causal blocks, a final LayerNorm; a caption's representation is the state at
its end-of-text token, which CLIP finds as the position of the highest token id (the tokenizer
gives end-of-text the last id; open_clip's ``text_global_pool`` with ``argmax``).
Initialisation follows CLIP's (and open_clip's): text token embeddings N(0, 0.02), positions
N(0, 0.01), attention N(0, w^-1/2), residual outputs N(0, w^-1/2 (2L)^-1/2), feed-forward inputs
N(0, (2w)^-1/2); the ViT's layers torch's defaults, its class and position embeddings N(0, 1/w);
projections N(0, w^-1/2).

``clip-vit-b32`` is CLIP ViT-B/32 (151,277,313 parameters, as open_clip's ``ViT-B-32``);
``clip-mini`` a 28x28 greyscale version for Fashion-MNIST on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .. import schema
from ..errors import ConfigError
from ..nn.positional import LearnedPositions
from ..nn.transformer import TransformerBlock
from ..registry import MODELS, register_model
from ..schema import option
from .base import ImageClassifier
from .vit import ViT, ViTConfig


@dataclass(frozen=True)
class CLIPConfig:
    embed_dim: int = option(512, "dimension of the shared image-text embedding space", low=1)
    image_encoder: str = option(
        "vit", "vit: the CLIP ViT of the image_* keys; or a registered image classifier (resnet20, lenet5, ...) "
        "whose forward_features are projected",
    )
    patch_size: int = option(32, "ViT: side of the square patches in pixels", low=1)
    image_width: int = option(768, "ViT: width of the image encoder", low=1)
    image_layers: int = option(12, "ViT: encoder layers", low=1)
    image_heads: int = option(12, "ViT: attention heads", low=1)
    vocab_size: int = option(49408, "text vocabulary size (from the tokenizer; end-of-text is the last id)", low=2)
    context_length: int = option(77, "longest caption in tokens, with start and end tokens", low=2)
    text_width: int = option(512, "width of the text encoder", low=1)
    text_layers: int = option(12, "text encoder layers", low=1)
    text_heads: int = option(8, "text attention heads", low=1)
    mlp_ratio: float = option(4.0, "feed-forward width / model width, both towers", low=0.01)
    activation: Literal["quick-gelu", "gelu"] = option("quick-gelu", "feed-forward activation (OpenAI's CLIP: quick-gelu)")
    dropout: float = option(0.0, "dropout on embeddings and residual branches, both towers", low=0.0, high=1.0)
    logit_scale_init: float = option(math.log(1 / 0.07), "initial log of the logit scale (CLIP: log(1/0.07))")
    max_logit_scale: float = option(100.0, "the logit scale exp(t) is clipped at this value (CLIP: 100)", low=1.0)
    in_channels: int = option(3, "image channels", low=1)
    input_size: int = option(224, "image side in pixels", low=1)

    def validate(self, path: str) -> None:
        if self.image_encoder == "vit":
            if self.input_size % self.patch_size:
                raise ConfigError(
                    f"{path}.patch_size: input_size {self.input_size} is not a multiple of patch_size {self.patch_size}."
                )
            if self.image_width % self.image_heads:
                raise ConfigError(f"{path}.image_heads: image_width ({self.image_width}) must be divisible by image_heads ({self.image_heads}).")
        if self.text_width % self.text_heads:
            raise ConfigError(f"{path}.text_heads: text_width ({self.text_width}) must be divisible by text_heads ({self.text_heads}).")


def image_tower(c: CLIPConfig) -> tuple[nn.Module, int]:
    """The image encoder without its classifier layer, and the width of its features."""
    if c.image_encoder == "vit":
        encoder: nn.Module = ViT(ViTConfig(
            patch_size=c.patch_size, dim=c.image_width, depth=c.image_layers, heads=c.image_heads,
            mlp_dim=int(c.image_width * c.mlp_ratio), dropout=c.dropout, attention_dropout=0.0,
            in_channels=c.in_channels, num_classes=1, input_size=c.input_size, activation=c.activation,
            pre_norm=True, patch_bias=False, norm_eps=1e-5,
        ))
    else:
        entry = MODELS.get(c.image_encoder, "model.image_encoder")
        if not (isinstance(entry.factory, type) and issubclass(entry.factory, ImageClassifier)):
            raise ConfigError(
                f"model.image_encoder: {c.image_encoder!r} is not an image classifier with forward_features "
                "(use vit, or a CNN/ResNet preset such as resnet20 or lenet5)."
            )
        data_keys = {k: v for k, v in (("in_channels", c.in_channels), ("input_size", c.input_size)) if hasattr(entry.config, k)}
        encoder = entry.factory(schema.replace(entry.config, data_keys, "model.image_encoder"))
    width = encoder.head.in_features
    encoder.head = nn.Identity()  # forward = forward_features: the representation CLIP projects
    return encoder, width


class TextTransformer(nn.Module):
    """``forward(tokens (B, T)) -> (B, width)``: the final-LayerNorm state at each caption's end-of-text token."""

    def __init__(self, c: CLIPConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(c.vocab_size, c.text_width)
        self.positions = LearnedPositions(c.context_length, c.text_width)
        self.dropout = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.text_width, c.text_heads, int(c.text_width * c.mlp_ratio), dropout=c.dropout,
                activation=c.activation, norm_first=True, eps=1e-5,
            )
            for _ in range(c.text_layers)
        )
        self.ln_final = nn.LayerNorm(c.text_width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positions(tokens.shape[1])  # (B, T, w)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, causal=True)
        x = self.ln_final(x)
        eot = tokens.argmax(dim=-1)  # end-of-text has the highest id
        return x[torch.arange(x.shape[0], device=x.device), eot]  # (B, w)


class CLIP(nn.Module):
    """``forward(images (B, C, H, W), tokens (B', T)) -> logits (B, B')`` of every image against every caption."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = c = config
        self.visual, image_width = image_tower(c)
        self.text = TextTransformer(c)
        self.image_projection = nn.Linear(image_width, c.embed_dim, bias=False)
        self.text_projection = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.logit_scale_init)))
        self._init_text()
        if c.image_encoder == "vit":
            self._init_visual(image_width)
        nn.init.normal_(self.image_projection.weight, std=image_width**-0.5)

    def _init_visual(self, width: int) -> None:
        """OpenAI's CLIP ViT: torch's default initialisation of the layers, N(0, 1/width) class and position
        embeddings (not timm's N(0, 0.02), under which ln_pre leaves the [class] token almost input-independent)."""
        visual = self.visual
        for m in visual.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.LayerNorm)):
                m.reset_parameters()
        nn.init.normal_(visual.cls_token, std=width**-0.5)
        nn.init.normal_(visual.pos_embed, std=width**-0.5)

    def _init_text(self) -> None:
        c, text = self.config, self.text
        nn.init.normal_(text.token_embedding.weight, std=0.02)
        nn.init.normal_(text.positions.weight, std=0.01)
        attn_std, proj_std, fc_std = c.text_width**-0.5, c.text_width**-0.5 * (2 * c.text_layers) ** -0.5, (2 * c.text_width) ** -0.5
        for block in text.blocks:
            nn.init.normal_(block.attn.qkv_proj.weight, std=attn_std)
            nn.init.zeros_(block.attn.qkv_proj.bias)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.out_proj.bias)
            nn.init.normal_(block.ff.fc1.weight, std=fc_std)
            nn.init.normal_(block.ff.fc2.weight, std=proj_std)
        nn.init.normal_(self.text_projection.weight, std=c.text_width**-0.5)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, embed_dim) image embeddings, L2-normalised unless ``normalize=False``."""
        z = self.image_projection(self.visual(images))
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, embed_dim) caption embeddings, L2-normalised unless ``normalize=False``."""
        z = self.text_projection(self.text(tokens))
        return F.normalize(z, dim=-1) if normalize else z

    def scale(self) -> torch.Tensor:
        """exp(t), clipped at ``max_logit_scale`` (no gradient flows through the clip once it binds)."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    def logits(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, B') scaled cosine similarities of normalised embeddings; the text-to-image logits are its transpose."""
        return self.scale() * image_embeddings @ text_embeddings.t()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode_image(images), self.encode_text(tokens))


register_model(
    "clip-vit-b32", CLIP, CLIPConfig(), family="clip",
    doc="CLIP ViT-B/32 (Radford et al. 2021): 12-layer 768-wide ViT with 32x32 patches, 12-layer 512-wide text Transformer",
)
register_model(
    "clip-mini", CLIP,
    CLIPConfig(
        embed_dim=128, patch_size=7, image_width=128, image_layers=6, image_heads=4, vocab_size=100, context_length=56,
        text_width=128, text_layers=2, text_heads=4, activation="gelu", in_channels=1, input_size=28,
    ),
    family="clip", doc="CLIP for 28x28 greyscale images: a vit-mini-sized image tower (7x7 patches), a 2-layer 128-wide text tower",
)
