"""EfficientNet (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks").

The baseline EfficientNet-B0 (Table 1) is a stack of MBConv blocks, the
inverted residual of MobileNetV2 with squeeze-and-excitation (Hu et al. 2018)
and the swish activation x * sigmoid(x) (SiLU): 1x1 expansion by 6 (none in
the first stage), a k x k depthwise convolution, SE squeezing to a quarter of
the block's *input* channels, and a linear 1x1 projection; the input is added
where the shape is unchanged, with stochastic depth (Huang et al. 2016) on the
residual branch (drop rate 0.2 at the last block, rising linearly from 0 at the
first, as in the reference code). After the stages: a 1x1 convolution to 1280
channels, pooling, dropout 0.2 and the classifier. torchvision's efficientnet_b0
has 5,288,548 parameters.

Compound scaling (Section 3.3, eq. 3): depth d = alpha^phi, width w = beta^phi,
resolution r = gamma^phi with alpha = 1.2, beta = 1.1, gamma = 1.15. B1..B7
are the rows of :data:`COMPOUND_SCALING`, the coefficients of the reference
implementation (rounded from eq. 3, with the dropout each uses). Width scales
every channel count (rounded to a multiple of 8 by ``make_divisible``), depth
the repeats of each stage (rounded up), and the resolution is ``input_size``.
There is no small-image layout: 28x28 images run, but the last stages see 1x1
maps (MobileNetV2's ``layout=small`` is the one for such images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn.blocks import DropPath, SqueezeExcitation, make_divisible
from ..registry import register_model
from ..schema import option
from .base import ImageClassifier

#: Table 1, stages 2-8: (expansion, kernel, stride, output channels, layers) of the MBConv stages of B0.
MBCONV_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)

#: Compound scaling: name -> (width coefficient, depth coefficient, resolution, dropout).
COMPOUND_SCALING: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


@dataclass(frozen=True)
class EfficientNetConfig:
    width_mult: float = option(1.0, "width coefficient w: scales every layer's channels (rounded to 8)", low=0.05)
    depth_mult: float = option(1.0, "depth coefficient d: scales each stage's layers (rounded up)", low=0.05)
    se_ratio: float = option(0.25, "squeeze-and-excitation channels as a fraction of a block's input (0: none)", low=0.0, high=1.0)
    drop_path: float = option(0.2, "stochastic depth: drop rate reached at the last block, from 0 at the first", low=0.0, high=1.0)
    dropout: float = option(0.2, "dropout before the classifier", low=0.0, high=1.0)
    stem_width: int = option(32, "channels of the stem convolution at w = 1", low=1)
    head_width: int = option(1280, "channels of the last 1x1 convolution at w = 1", low=1)
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels: the resolution coefficient (B0: 224)", low=1)


def conv_bn_silu(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out), nn.SiLU(inplace=True),
    )


class MBConv(nn.Module):
    """[1x1 expand-BN-SiLU] - kxk depthwise-BN-SiLU - SE - 1x1 project-BN, + DropPath(branch) + x where shapes agree."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int, c: EfficientNetConfig, drop: float) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = [conv_bn_silu(c_in, hidden)] if expansion != 1 else []
        layers.append(conv_bn_silu(hidden, hidden, kernel, stride, groups=hidden))
        if c.se_ratio > 0:
            layers.append(SqueezeExcitation(hidden, max(1, int(c_in * c.se_ratio)), activation=nn.SiLU))
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = DropPath(drop if self.residual else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)  # (B, c_out, H / s, W / s)
        return x + self.drop_path(out) if self.residual else out


class EfficientNet(ImageClassifier):
    """Stem (3x3/2), MBConv stages scaled by width and depth, 1x1 head convolution, pool, dropout, linear.

    Dropout sits in ``forward``, before the head, so that ``forward_features`` is deterministic.
    """

    def __init__(self, config: EfficientNetConfig) -> None:
        super().__init__()
        self.config = c = config
        width = make_divisible(c.stem_width * c.width_mult)
        layers: list[nn.Module] = [conv_bn_silu(c.in_channels, width, 3, 2)]
        repeats = [math.ceil(n * c.depth_mult) for *_, n in MBCONV_STAGES]
        total, index = sum(repeats), 0
        for (t, k, s, channels, _), n in zip(MBCONV_STAGES, repeats, strict=True):
            c_out = make_divisible(channels * c.width_mult)
            stage = []
            for i in range(n):
                stage.append(MBConv(width, c_out, k, s if i == 0 else 1, t, c, c.drop_path * index / total))
                width, index = c_out, index + 1
            layers.append(nn.Sequential(*stage))
        head_width = make_divisible(c.head_width * c.width_mult)
        layers.append(conv_bn_silu(width, head_width))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(head_width, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # (B, head_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.forward_features(x)))


def efficientnet(name: str) -> EfficientNetConfig:
    """The config of EfficientNet-``name`` (b0..b7), a row of :data:`COMPOUND_SCALING`."""
    width, depth, resolution, dropout = COMPOUND_SCALING[name]
    return EfficientNetConfig(width_mult=width, depth_mult=depth, input_size=resolution, dropout=dropout)


for _name in COMPOUND_SCALING:
    register_model(
        f"efficientnet-{_name}", EfficientNet, efficientnet(_name), family="efficientnet",
        doc=f"EfficientNet-{_name.upper()} (Tan & Le 2019), width x{COMPOUND_SCALING[_name][0]:g}, "
        f"depth x{COMPOUND_SCALING[_name][1]:g}, {COMPOUND_SCALING[_name][2]} px",
    )
