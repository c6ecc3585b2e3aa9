"""MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov & Chen, 2018, "MobileNetV2: Inverted Residuals and
Linear Bottlenecks").

The building block (Table 1) is an inverted residual: a 1x1 convolution expands
k channels to tk (expansion factor t), a 3x3 depthwise convolution filters each
channel (stride s), and a 1x1 convolution projects back to k' channels. The
first two are followed by BN and ReLU6; the projection is linear (BN only), the
"linear bottleneck" of Section 3.2, because a ReLU on the narrow representation
destroys information. Where s = 1 and k = k' the block input is added (the
shortcut joins the bottlenecks, not the expanded layers). Blocks with t = 1
have no expansion convolution.

The network (Table 2): a 3x3/2 convolution with 32 channels, 17 bottleneck
blocks in seven rows (t, c, n, s), a 1x1 convolution to 1280 channels, global
average pooling, dropout and a linear classifier. The width multiplier alpha
scales every channel count, rounded to a multiple of 8; the last 1x1 layer
keeps its 1280 channels for alpha < 1. torchvision's
mobilenet_v2 has 3,504,872 parameters at alpha = 1.

Small images: the ImageNet layout divides the side by 32, which leaves a 1x1
map of a 28x28 image after the third row. ``layout=small`` (what ``auto``
picks below 112 pixels) keeps two of the five downsamplings out: the stem
convolution and the first block of the (6, 24, 2, 2) row have stride 1, as in
the common CIFAR adaptations, so the side is divided by 8 (28 -> 14 -> 7 -> 4).
The weights are the same; only those two strides change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..nn.blocks import make_divisible
from ..registry import register_model
from ..schema import option
from .base import ImageClassifier

#: Table 2: (expansion t, output channels c, repeats n, stride s of the first block) per row.
INVERTED_RESIDUAL_ROWS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_SMALL_UNSTRIDED_ROW = 1  # layout=small: the (6, 24, 2, 2) row starts at stride 1


@dataclass(frozen=True)
class MobileNetV2Config:
    width_mult: float = option(1.0, "width multiplier alpha: scales every layer's channels (rounded to 8)", low=0.05)
    stem_width: int = option(32, "channels of the first convolution at alpha = 1", low=1)
    last_channel: int = option(1280, "channels of the last 1x1 convolution (scaled by alpha only when alpha > 1)", low=1)
    dropout: float = option(0.2, "dropout before the classifier", low=0.0, high=1.0)
    layout: Literal["auto", "imagenet", "small"] = option(
        "auto", "imagenet: stride-2 stem, side / 32; small: stride-1 stem and stride-1 24-channel row, side / 8; "
        "auto: by input_size (>= 112: imagenet)",
    )
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels", low=1)

    @property
    def small(self) -> bool:
        return self.layout == "small" or (self.layout == "auto" and self.input_size < 112)


def conv_bn_relu6(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """[1x1 expand-BN-ReLU6] - 3x3 depthwise-BN-ReLU6 - 1x1 project-BN (linear), + x where shapes agree."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = [conv_bn_relu6(c_in, hidden)] if expansion != 1 else []
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),  # depthwise: one filter per channel
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out),  # linear bottleneck: no ReLU
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)  # (B, c_out, H / s, W / s)
        return x + out if self.residual else out


class MobileNetV2(ImageClassifier):
    """Stem, 17 inverted residual blocks, 1x1 convolution, pool, dropout, linear.

    Dropout sits in ``forward``, before the head, so that ``forward_features``
    (the pooled 1280 channels) is deterministic.
    """

    def __init__(self, config: MobileNetV2Config) -> None:
        super().__init__()
        self.config = c = config
        width = make_divisible(c.stem_width * c.width_mult)
        last = make_divisible(c.last_channel * max(1.0, c.width_mult))
        layers: list[nn.Module] = [conv_bn_relu6(c.in_channels, width, 3, 1 if c.small else 2)]
        for row, (t, channels, n, s) in enumerate(INVERTED_RESIDUAL_ROWS):
            c_out = make_divisible(channels * c.width_mult)
            stride = 1 if (c.small and row == _SMALL_UNSTRIDED_ROW) else s
            for i in range(n):
                layers.append(InvertedResidual(width, c_out, stride if i == 0 else 1, t))
                width = c_out
        layers.append(conv_bn_relu6(width, last))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(last, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # (B, last_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.forward_features(x)))


# --------------------------------------------------------------------------- presets

register_model("mobilenetv2", MobileNetV2, MobileNetV2Config(), family="mobilenet", doc="MobileNetV2 (Sandler et al. 2018), alpha=1")
register_model(
    "mobilenetv2-small", MobileNetV2, MobileNetV2Config(layout="small", num_classes=10, input_size=32), family="mobilenet",
    doc="MobileNetV2 for 28-32 pixel images: stride-1 stem, side / 8",
)
