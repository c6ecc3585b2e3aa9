"""U-Net for semantic segmentation (Ronneberger, Fischer & Brox 2015, Section 2 and Figure 1).

Not the DDPM denoiser of ``models/unet.py``: this network maps an image (B, C, H, W) to
per-pixel class logits (B, K, H', W').

- Contracting path: ``depth`` times a double 3x3 convolution (each followed by ReLU; here
  optionally batch norm, Ioffe & Szegedy 2015, between the two) and a 2x2 max-pool with
  stride 2; the number of feature channels doubles at each down-sampling step
  (``base_width`` 64 in the paper: 64, 128, 256, 512, 1024).
- Expanding path: per step an up-sampling of the feature map followed by a 2x2 convolution
  ("up-convolution", here a 2x2 transposed convolution with stride 2) that halves the
  channels, the concatenation with the corresponding feature map of the contracting path,
  and a double 3x3 convolution. With ``bilinear`` the up-convolution is a bilinear
  up-sampling instead, and, as in the common re-implementation (milesial/Pytorch-UNet), the
  deepest block and each decoder block but the last output half the channels, so that the
  concatenation keeps the paper's widths.
- A final 1x1 convolution maps each 64-channel feature vector to the K classes.

``padding``: the paper's convolutions are unpadded ("valid"), so every 3x3 convolution
loses a border of one pixel, the skip feature maps are centre-cropped to the expanding
path's size, and the output is smaller than the input (572x572 -> 388x388 in Figure 1;
the task centre-crops the masks to match). With ``padding`` (the default, as commonly
used) the convolutions keep the size and the output has the input's size; a decoder map
that is one pixel short of its skip (an odd side before a max-pool) is zero-padded to it.

Sizes: the paper's network (``padding=false``, no batch norm, 2 classes, 1 input channel)
has 31,030,658 parameters (the paper prints no count; "about 31M" is the usual figure).
The preset ``unet-seg`` (padded, batch norm, bias-free convolutions before each norm,
transposed up-convolutions) with 3 input channels and 2 classes has 31,037,698 parameters,
the count of milesial/Pytorch-UNet's ``UNet(n_channels=3, n_classes=2, bilinear=False)``;
with ``bilinear`` it has 17,263,042. All three are checked in
``tests/models/test_segmentation_model.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from ..schema import option


@dataclass(frozen=True)
class SegUNetConfig:
    in_channels: int = option(3, "image channels (from the data)", low=1)
    num_classes: int = option(2, "classes per pixel, background included (from the data)", low=2)
    base_width: int = option(64, "channels of the first block; they double at each down-sampling step", low=1)
    depth: int = option(4, "down-sampling steps (2x2 max-pools) of the contracting path", low=1)
    batch_norm: bool = option(True, "batch norm after each 3x3 convolution (then the convolution has no bias)")
    bilinear: bool = option(False, "bilinear up-sampling instead of the 2x2 transposed up-convolution")
    padding: bool = option(True, "pad the 3x3 convolutions: output the input's size (false: unpadded, as in the paper)")


class DoubleConv(nn.Module):
    """(3x3 convolution -> [batch norm] -> ReLU) twice: one block of either path."""

    def __init__(self, c_in: int, c_out: int, c_mid: int, batch_norm: bool, padding: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in ((c_in, c_mid), (c_mid, c_out)):
            layers.append(nn.Conv2d(a, b, 3, padding=int(padding), bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.ReLU(inplace=True))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Up(nn.Module):
    """Up-sample, concatenate the skip feature map (cropped or padded to fit), double 3x3 convolution."""

    def __init__(self, c_in: int, c_out: int, config: SegUNetConfig) -> None:
        super().__init__()
        self.padded = config.padding
        if config.bilinear:  # the channels stay c_in // 2 + c_in // 2: the block below already halved them
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(c_in, c_out, c_in // 2, config.batch_norm, config.padding)
        else:
            self.up = nn.ConvTranspose2d(c_in, c_in // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(c_in, c_out, c_out, config.batch_norm, config.padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, c_in // 2, 2h, 2w)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dh < 0 or dw < 0:  # cannot happen: the skip is never smaller than the map up-sampled from below it
            raise ValueError(f"U-Net: decoder map {tuple(x.shape[-2:])} is larger than its skip {tuple(skip.shape[-2:])}")
        if (dh or dw) and not self.padded:  # the paper: crop the skip to the centre
            skip = skip[..., dh // 2: dh // 2 + x.shape[-2], dw // 2: dw // 2 + x.shape[-1]]
        elif dh or dw:  # padded: an odd side lost a pixel to the max-pool; give it back
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return self.conv(torch.cat([skip, x], dim=1))


def valid_side(side: int, depth: int) -> int:
    """The output side of the unpadded (paper's) U-Net for an input side, or 0 where a 3x3 convolution would meet a
    map smaller than 3 (572 -> 388 at depth 4, the paper's Figure 1)."""
    s = side
    for level in range(depth + 1):  # contracting path: (pool, except first) then two 3x3 convolutions
        s = s if level == 0 else s // 2
        if s < 5:
            return 0
        s -= 4
    for _ in range(depth):  # expanding path: 2x up-convolution, then two 3x3 convolutions
        s = 2 * s - 4
        if s < 1:
            return 0
    return s


def smallest_valid_side(depth: int) -> int:
    return next(side for side in range(1, 1 << 16) if valid_side(side, depth) > 0)


class SegmentationUNet(nn.Module):
    """``forward(x) -> logits`` (B, K, H', W'): H' = H with padding, smaller without (see the module doc)."""

    #: outputs a prediction per pixel, not per image (what the segmentation task checks)
    dense_output: ClassVar[bool] = True

    def __init__(self, config: SegUNetConfig) -> None:
        super().__init__()
        self.config = config
        w, d, factor = config.base_width, config.depth, 2 if config.bilinear else 1
        widths = [w * 2**i for i in range(d + 1)]  # 64, 128, 256, 512, 1024
        self.inc = DoubleConv(config.in_channels, w, w, config.batch_norm, config.padding)
        self.down = nn.ModuleList(
            DoubleConv(widths[i - 1], widths[i] // (factor if i == d else 1), widths[i] // (factor if i == d else 1),
                       config.batch_norm, config.padding)
            for i in range(1, d + 1)
        )
        self.up = nn.ModuleList(Up(widths[i], widths[i - 1] // (factor if i > 1 else 1), config) for i in range(d, 0, -1))
        self.head = nn.Conv2d(w, config.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.padding and min(valid_side(int(n), self.config.depth) for n in x.shape[-2:]) == 0:
            raise ConfigError(
                f"model.padding=false: the unpadded U-Net of depth {self.config.depth} needs images of at least "
                f"{smallest_valid_side(self.config.depth)} pixels a side (got {tuple(x.shape[-2:])}); set model.padding=true, "
                "a smaller model.depth or larger images."
            )
        skips = [self.inc(x)]  # (B, w, H, W)
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))  # (B, 2w, H/2, W/2), ...
        h = skips.pop()  # the bottom of the "U": (B, 16w, H/16, W/16) at depth 4
        for block in self.up:
            h = block(h, skips.pop())
        return self.head(h)  # (B, K, H, W)


register_model(
    "unet-seg", SegmentationUNet, SegUNetConfig(), family="segmentation",
    doc="U-Net for segmentation (Ronneberger et al. 2015): 64 base channels, depth 4, batch norm, padded (31.0M)",
)
