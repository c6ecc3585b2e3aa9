"""The denoising UNet of DDPM (Ho et al. 2020, Appendix B), class-conditional.

A pure denoiser ``model(x_t, t, y) -> output`` (its meaning, epsilon / x0 / v, and all
noise math live in the scheduler, ``tasks/noise.py``). Layout: a 3x3 stem; per
resolution ``num_res_blocks`` residual blocks (GroupNorm, SiLU, conv, plus a projection
of the time embedding; Wide-ResNet style), self-attention at the resolutions listed in
``attention_at``, a stride-2 convolution down; a middle of block-attention-block; the
mirror image up (nearest upsampling + conv) with the skip connections concatenated.
Time t enters through the Transformer sinusoidal embedding followed by an MLP; a class
label adds a learned embedding, with an extra "no label" class so that one network
learns both conditional and unconditional scores (classifier-free guidance, Ho & Salimans 2022).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from ..schema import option


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = option(1, "image channels (from the data)", low=1)
    input_size: int = option(28, "image side in pixels (from the data)", low=4)
    num_classes: int = option(10, "classes (from the data; used when conditional)", low=1)
    width: int = option(32, "channels at full resolution", low=8)
    multipliers: tuple[int, ...] = option((1, 2, 2), "channel multiplier per resolution (each one halves the side)", low=1)
    num_res_blocks: int = option(2, "residual blocks per resolution", low=1)
    attention_at: tuple[int, ...] = option((7,), "image sides at which blocks add self-attention", low=1)
    groups: int = option(8, "GroupNorm groups", low=1)
    dropout: float = option(0.1, "dropout inside residual blocks", low=0.0, high=1.0)
    conditional: bool = option(False, "class-conditional (with a null class for classifier-free guidance)")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim), as the Transformer's positions."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions, residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)  # each (B, HW, C)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        t_dim = 4 * c.width
        self.time_mlp = nn.Sequential(nn.Linear(c.width, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.label = nn.Embedding(c.num_classes + 1, t_dim) if c.conditional else None  # index num_classes: no label
        self.stem = nn.Conv2d(c.in_channels, c.width, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch, side = [c.width], c.width, c.input_size
        for level, mult in enumerate(c.multipliers):
            for _ in range(c.num_res_blocks):
                self.down.append(self._block(ch, c.width * mult, side))
                ch = c.width * mult
                skips.append(ch)
            if level < len(c.multipliers) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                side = (side + 1) // 2
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, t_dim, c.groups, c.dropout), AttentionBlock(ch, c.groups),
                                  ResBlock(ch, ch, t_dim, c.groups, c.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.multipliers))):
            for _ in range(c.num_res_blocks + 1):
                self.up.append(self._block(ch + skips.pop(), c.width * mult, side))
                ch = c.width * mult
            if level > 0:
                self.up.append(nn.Conv2d(ch, ch, 3, padding=1))  # after nearest-neighbour upsampling
                side *= 2
        self.head = nn.Sequential(nn.GroupNorm(c.groups, ch), nn.SiLU(), nn.Conv2d(ch, c.in_channels, 3, padding=1))

    def _block(self, c_in: int, c_out: int, side: int) -> nn.ModuleList:
        c = self.config
        parts: list[nn.Module] = [ResBlock(c_in, c_out, 4 * c.width, c.groups, c.dropout)]
        if side in c.attention_at:
            parts.append(AttentionBlock(c_out, c.groups))
        return nn.ModuleList(parts)

    @staticmethod
    def _run(block: nn.ModuleList, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = block[0](h, temb)
        return block[1](h) if len(block) > 1 else h

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        temb = self.time_mlp(timestep_embedding(t, c.width))  # (B, 4 width)
        if self.label is not None:
            y = torch.full_like(t, c.num_classes) if y is None else y  # no label: the unconditional score
            temb = temb + self.label(y)
        h = self.stem(x)
        hs = [h]
        for layer in self.down:
            h = self._run(layer, h, temb) if isinstance(layer, nn.ModuleList) else layer(h)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb)), temb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                skip = hs.pop()
                h = self._run(layer, torch.cat([h, skip], dim=1), temb)
            else:
                h = layer(F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
        return self.head(h)  # (B, C, H, W)


register_model(
    "unet-fashion", UNet, UNetConfig(conditional=True), family="diffusion",
    doc="DDPM UNet for 28x28 images: 32/64/64 channels, attention at 7x7, class-conditional",
)
register_model(
    "unet-ddpm-cifar", UNet, UNetConfig(in_channels=3, input_size=32, width=128, multipliers=(1, 2, 2, 2), attention_at=(16,)),
    family="diffusion", doc="the DDPM CIFAR-10 UNet (Ho et al. 2020): 128 channels, (1, 2, 2, 2), attention at 16x16",
)
