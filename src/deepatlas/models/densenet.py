"""DenseNet (Huang, Liu, van der Maaten & Weinberger, 2017, "Densely Connected Convolutional Networks").

Inside a dense block, layer l takes the concatenation of every earlier feature
map, eq. (2): x_l = H_l([x_0, x_1, ..., x_{l-1}]), and adds k new maps (the
growth rate). H_l is BN-ReLU-Conv(3x3); with bottlenecks (DenseNet-B) it is
BN-ReLU-Conv(1x1, 4k)-BN-ReLU-Conv(3x3, k). Between blocks a transition layer
(BN-ReLU-Conv(1x1)-AvgPool(2x2)) halves the resolution and, with compression
theta (DenseNet-C), keeps floor(theta m) of the m maps. DenseNet-BC has both,
theta = 0.5.

- ImageNet layout (Table 1): a 7x7/2 convolution with 2k maps, BN-ReLU, 3x3/2
  max pool, four dense blocks (DenseNet-121: 6, 12, 24, 16 layers; -169:
  6, 12, 32, 32), k = 32; torchvision's densenet121 has 7,978,856 parameters.
- CIFAR layout (Section 3, implementation details): a 3x3 convolution with 2k maps (16 without
  bottlenecks) straight into three dense blocks on 32x32, 16x16 and 8x8 maps;
  depth L = 3 * 2n + 4 for n bottleneck layers per block. DenseNet-BC
  (L = 100, k = 12) has 769,162 parameters for 10 classes (Table 2: 0.8M).

Both end with BN-ReLU, global average pooling and a linear classifier. The
stem follows the input like ResNet's: ``stem=auto`` takes the ImageNet stem
for images of at least 112 pixels. Dropout, where set, follows every
convolution but the first, as the paper does for data without augmentation
(torchvision drops only after each 3x3 convolution).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from ..schema import option
from .base import ImageClassifier


@dataclass(frozen=True)
class DenseNetConfig:
    growth_rate: int = option(32, "k: feature maps each layer adds", low=1)
    block_config: tuple[int, ...] = option((6, 12, 24, 16), "layers per dense block (DenseNet-121: 6, 12, 24, 16)", low=1)
    stem_width: int = option(64, "maps of the first convolution (the paper: 2k)", low=1)
    bottleneck: bool = option(True, "DenseNet-B: a 1x1 convolution to bn_size * k maps before each 3x3")
    bn_size: int = option(4, "bottleneck width as a multiple of the growth rate (the paper: 4)", low=1)
    compression: float = option(0.5, "theta: fraction of the maps a transition keeps (DenseNet-C: 0.5; 1: none)", low=0.0, high=1.0)
    dropout: float = option(0.0, "dropout after every convolution but the first (the paper, without augmentation: 0.2)", low=0.0, high=1.0)
    stem: Literal["auto", "imagenet", "cifar"] = option("auto", "imagenet: 7x7/2 conv + max pool; cifar: 3x3/1 conv; auto: by input_size")
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels", low=1)

    def validate(self, path: str) -> None:
        if self.compression <= 0.0:
            raise ConfigError(f"{path}.compression: must be > 0 (1: transitions keep every map), got {self.compression}.")

    @property
    def imagenet_stem(self) -> bool:
        return self.stem == "imagenet" or (self.stem == "auto" and self.input_size >= 112)


class DenseLayer(nn.Module):
    """H_l: [BN-ReLU-Conv1x1(bn_size k)]-BN-ReLU-Conv3x3(k); returns [x, H_l(x)] (eq. 2)."""

    def __init__(self, c_in: int, c: DenseNetConfig) -> None:
        super().__init__()
        k, layers = c.growth_rate, []
        if c.bottleneck:
            inner = c.bn_size * k
            layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, inner, 1, bias=False), _dropout(c)]
            c_in = inner
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, k, 3, 1, 1, bias=False), _dropout(c)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)  # (B, c_in + k, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1(floor(theta m))-AvgPool(2x2, stride 2)."""

    def __init__(self, c_in: int, c_out: int, c: DenseNetConfig) -> None:
        super().__init__(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 1, bias=False), _dropout(c),
            nn.AvgPool2d(2, 2),
        )


def _dropout(c: DenseNetConfig) -> nn.Module:
    return nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()


class DenseNet(ImageClassifier):
    """Stem, dense blocks joined by transitions, BN-ReLU, global average pool, linear."""

    def __init__(self, config: DenseNetConfig) -> None:
        super().__init__()
        self.config = c = config
        halvings = len(c.block_config) - 1  # one 2x2 average pool per transition
        side = (c.input_size + 3) // 4 if c.imagenet_stem else c.input_size  # the stem's two stride-2 layers round up
        smallest = 4 * 2**halvings - 3 if c.imagenet_stem else 2**halvings
        if side >> halvings < 1:
            raise ConfigError(
                f"model.input_size: this DenseNet needs images of at least {smallest}x{smallest} pixels, got "
                f"{c.input_size} (use stem=cifar, fewer blocks or resize the data)."
            )
        if c.imagenet_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(c.in_channels, c.stem_width, 7, 2, 3, bias=False), nn.BatchNorm2d(c.stem_width),
                nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
            )
        else:  # the first dense layer normalises the stem's output itself
            self.stem = nn.Sequential(nn.Conv2d(c.in_channels, c.stem_width, 3, 1, 1, bias=False))
        blocks: list[nn.Module] = []
        width = c.stem_width
        for i, n_layers in enumerate(c.block_config):
            layers = []
            for _ in range(n_layers):
                layers.append(DenseLayer(width, c))
                width += c.growth_rate
            blocks.append(nn.Sequential(*layers))
            if i < len(c.block_config) - 1:
                kept = int(width * c.compression)
                blocks.append(Transition(width, kept, c))
                width = kept
        self.blocks = nn.Sequential(*blocks)
        self.final_act = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_act(self.blocks(self.stem(x)))  # (B, C, H', W')
        return self.pool(x).flatten(1)  # (B, C)


# --------------------------------------------------------------------------- presets

_IMAGENET = DenseNetConfig()
_CIFAR = DenseNetConfig(stem="cifar", num_classes=10, input_size=32)


def cifar_densenet(depth: int, k: int, bc: bool = True) -> DenseNetConfig:
    """The CIFAR DenseNet of depth L (Section 3): three blocks of (L - 4) / 6 bottleneck layers
    (DenseNet-BC, theta = 0.5, stem 2k) or of (L - 4) / 3 plain layers (no compression, stem 16)."""
    per_layer = 6 if bc else 3
    if (depth - 4) % per_layer or depth <= 4:
        raise ConfigError(f"CIFAR DenseNet{'-BC' if bc else ''} depth must be {per_layer}n+4, got {depth}.")
    n = (depth - 4) // per_layer
    if bc:
        return replace(_CIFAR, growth_rate=k, block_config=(n, n, n), stem_width=2 * k)
    return replace(_CIFAR, growth_rate=k, block_config=(n, n, n), stem_width=16, bottleneck=False, compression=1.0)


for _d, _k, _stem, _blocks in (
    (121, 32, 64, (6, 12, 24, 16)),
    (169, 32, 64, (6, 12, 32, 32)),
    (201, 32, 64, (6, 12, 48, 32)),
    (161, 48, 96, (6, 12, 36, 24)),
):
    register_model(
        f"densenet{_d}", DenseNet, replace(_IMAGENET, growth_rate=_k, stem_width=_stem, block_config=_blocks),
        family="densenet", doc=f"DenseNet-{_d} (Huang et al. 2017), ImageNet layout, k={_k}",
    )
for _d, _k in ((100, 12), (250, 24), (190, 40)):
    register_model(
        f"densenet-bc-{_d}-{_k}", DenseNet, cifar_densenet(_d, _k), family="densenet",
        doc=f"CIFAR DenseNet-BC (Huang et al. 2017), L={_d}, k={_k}",
    )
for _d, _k in ((40, 12), (100, 12)):
    register_model(
        f"densenet-{_d}-{_k}", DenseNet, cifar_densenet(_d, _k, bc=False), family="densenet",
        doc=f"CIFAR DenseNet (Huang et al. 2017, no bottleneck or compression), L={_d}, k={_k}",
    )
