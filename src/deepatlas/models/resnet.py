"""The ResNet family: residual learning y = F(x, {W_i}) + x.

- ResNet (He et al., 2016a, "Deep Residual Learning"): post-activation basic
  (3x3, 3x3) and bottleneck (1x1, 3x3, 1x1, expansion 4) blocks; eq. (1)
  y = F(x) + x with identity shortcuts, eq. (2) y = F(x) + W_s x with a 1x1
  projection where the shape changes. ImageNet models (18-152 layers, Table 1)
  use projections ("option B"); the CIFAR models (6n+2 layers, Section 4.2) use
  parameter-free zero-padding shortcuts ("option A").
- Pre-activation ResNet (He et al., 2016b, "Identity Mappings"): BN and ReLU
  before each convolution, x_{l+1} = x_l + F(x_l), and a final BN-ReLU.
- Wide ResNet (Zagoruyko & Komodakis, 2016): pre-activation basic blocks, width
  multiplied by k, WRN-d-k with (d - 4) / 6 blocks per stage, dropout between
  the two convolutions.
- ResNeXt (Xie et al., 2017): bottleneck blocks whose 3x3 convolution is split
  into C groups ("cardinality") of width d: ResNeXt-50 32x4d.
- SE-ResNet (Hu et al., 2018): a squeeze-and-excitation module rescales the
  channels of each residual branch before the addition (Fig. 3), reduction
  r = 16 (``se_ratio = 1/16``); SE-ResNet-50 has about 2.5M parameters more
  than ResNet-50 (Section 4).
- Stochastic depth (Huang et al., 2016): in training each residual branch is
  dropped with probability 1 - p_l, p_l = 1 - l / L (1 - p_L) for block l of L
  (eq. 4, the linear decay rule; ``drop_path`` = 1 - p_L); the identity in
  evaluation.

The stem adapts to the input: the ImageNet stem (7x7/2 convolution and 3x3/2
max pool) for inputs of at least 112 pixels, else a 3x3/1 convolution with no
pooling (the CIFAR stem), so that 28x28 and 32x32 images keep their resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn.blocks import DropPath, SqueezeExcitation
from ..registry import register_model
from ..schema import option
from .base import ImageClassifier


@dataclass(frozen=True)
class ResNetConfig:
    block: Literal["basic", "bottleneck"] = option("basic", "residual block: basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1)")
    layers: tuple[int, ...] = option((2, 2, 2, 2), "blocks per stage", low=1)
    widths: tuple[int, ...] = option((64, 128, 256, 512), "base width per stage (bottleneck output is 4x)", low=1)
    preact: bool = option(False, "pre-activation blocks (He et al. 2016b)")
    groups: int = option(1, "cardinality of the bottleneck 3x3 convolution (ResNeXt)", low=1)
    base_width: int = option(64, "bottleneck width per group, relative to 64 (ResNeXt d; wide: 128)", low=1)
    shortcut: Literal["A", "B"] = option("B", "A: zero-padding identity; B: 1x1 projection where the shape changes")
    stem: Literal["auto", "imagenet", "cifar"] = option("auto", "imagenet: 7x7/2 conv + max pool; cifar: 3x3/1 conv; auto: by input_size")
    stem_width: int = option(64, "channels of the stem convolution", low=1)
    dropout: float = option(0.0, "dropout between the convolutions of a block (Wide ResNet)", low=0.0, high=1.0)
    se_ratio: float = option(
        0.0, "squeeze-and-excitation in every block: squeeze channels as a fraction of the block output "
        "(Hu et al. 2018: 1/16 = 0.0625; 0: none)", low=0.0, high=1.0,
    )
    drop_path: float = option(
        0.0, "stochastic depth: drop probability of the last block, rising linearly from the first "
        "(Huang et al. 2016: 0.5; 0: off)", low=0.0, high=1.0,
    )
    zero_init_residual: bool = option(False, "start each residual branch at zero (last BN weight = 0)")
    inner_widths: tuple[int, ...] = option(
        (), "basic blocks: channels between each block's two convolutions, one per block in order "
        "(channel pruning makes them smaller; empty: the stage width)", low=1,
    )
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels", low=1)

    def validate(self, path: str) -> None:
        if self.drop_path >= 1.0:
            raise ConfigError(f"{path}.drop_path: {self.drop_path:g} would drop the last residual branch always; "
                              "use a probability below 1 (Huang et al. 2016: 0.5).")
        if len(self.layers) != len(self.widths):
            raise ConfigError(f"{path}.widths: needs one width per stage ({len(self.layers)}), got {len(self.widths)}.")
        if self.groups > 1 and self.block != "bottleneck":
            raise ConfigError(f"{path}.groups: grouped convolutions need block=bottleneck (ResNeXt).")
        if self.block == "bottleneck" and int(min(self.widths) * self.base_width / 64) < 1:
            raise ConfigError(f"{path}.base_width: bottleneck width int(width * base_width / 64) must be >= 1.")
        if self.shortcut == "A" and self.block == "bottleneck":
            raise ConfigError(f"{path}.shortcut: option A (zero padding) is defined for basic blocks only.")
        if self.inner_widths and (self.block != "basic" or len(self.inner_widths) != sum(self.layers)):
            raise ConfigError(
                f"{path}.inner_widths: needs block=basic and one width per block ({sum(self.layers)}), "
                f"got {len(self.inner_widths)} for block={self.block}; leave it empty for the stage widths."
            )


def conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, groups=groups, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride, bias=False)


class PadShortcut(nn.Module):
    """Option A: subsample spatially and zero-pad the new channels (no parameters)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, c_out, H/s, W/s)


def branch_end(c_out: int, c: ResNetConfig, drop: float) -> tuple[nn.Module, nn.Module]:
    """What ends a residual branch before the addition: SE (or the identity) and stochastic depth."""
    se = SqueezeExcitation(c_out, max(1, round(c_out * c.se_ratio))) if c.se_ratio > 0 else nn.Identity()
    return se, DropPath(drop)


def shortcut(c_in: int, c_out: int, stride: int, kind: str, preact: bool) -> nn.Module | None:
    """``None`` where the identity fits; otherwise option A or B."""
    if stride == 1 and c_in == c_out:
        return None
    if kind == "A":
        return PadShortcut(c_in, c_out, stride)
    if preact:  # the pre-activated input is projected; no BN after the projection
        return conv1x1(c_in, c_out, stride)
    return nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU (eq. 1 and 2 of He et al. 2016a)."""

    expansion = 1
    last_bn = "bn2"  # zeroed by zero_init_residual

    def __init__(
        self, c_in: int, width: int, stride: int, c: ResNetConfig, inner: int | None = None, drop: float = 0.0,
    ) -> None:
        super().__init__()
        inner = inner or width
        self.conv1, self.bn1 = conv3x3(c_in, inner, stride), nn.BatchNorm2d(inner)
        self.drop = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.conv2, self.bn2 = conv3x3(inner, width), nn.BatchNorm2d(width)
        self.se, self.drop_path = branch_end(width, c, drop)
        self.shortcut = shortcut(c_in, width, stride, c.shortcut, preact=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.drop_path(self.se(self.bn2(self.conv2(self.drop(out)))))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3(groups)-BN-ReLU-conv1x1-BN, + shortcut, ReLU.

    The stride sits on the 3x3 convolution (as in ResNet v1.5 and ResNeXt).
    """

    expansion = 4
    last_bn = "bn3"

    def __init__(self, c_in: int, width: int, stride: int, c: ResNetConfig, drop: float = 0.0) -> None:
        super().__init__()
        inner = int(width * c.base_width / 64) * c.groups
        c_out = width * self.expansion
        self.conv1, self.bn1 = conv1x1(c_in, inner), nn.BatchNorm2d(inner)
        self.conv2, self.bn2 = conv3x3(inner, inner, stride, c.groups), nn.BatchNorm2d(inner)
        self.drop = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.conv3, self.bn3 = conv1x1(inner, c_out), nn.BatchNorm2d(c_out)
        self.se, self.drop_path = branch_end(c_out, c, drop)
        self.shortcut = shortcut(c_in, c_out, stride, c.shortcut, preact=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.drop_path(self.se(self.bn3(self.conv3(self.drop(out)))))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, + shortcut (He et al. 2016b, Fig. 4e)."""

    expansion = 1

    def __init__(
        self, c_in: int, width: int, stride: int, c: ResNetConfig, inner: int | None = None, drop: float = 0.0,
    ) -> None:
        super().__init__()
        inner = inner or width
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), conv3x3(c_in, inner, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(inner), conv3x3(inner, width)
        self.drop = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.se, self.drop_path = branch_end(width, c, drop)
        self.shortcut = shortcut(c_in, width, stride, c.shortcut, preact=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.drop(F.relu(self.bn2(out))))
        return self.drop_path(self.se(out)) + identity


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1, + shortcut."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, c: ResNetConfig, drop: float = 0.0) -> None:
        super().__init__()
        inner = int(width * c.base_width / 64) * c.groups
        c_out = width * self.expansion
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), conv1x1(c_in, inner)
        self.bn2, self.conv2 = nn.BatchNorm2d(inner), conv3x3(inner, inner, stride, c.groups)
        self.bn3, self.conv3 = nn.BatchNorm2d(inner), conv1x1(inner, c_out)
        self.drop = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.se, self.drop_path = branch_end(c_out, c, drop)
        self.shortcut = shortcut(c_in, c_out, stride, c.shortcut, preact=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(self.drop(F.relu(self.bn3(out))))
        return self.drop_path(self.se(out)) + identity


_BLOCKS = {
    ("basic", False): BasicBlock,
    ("bottleneck", False): Bottleneck,
    ("basic", True): PreActBlock,
    ("bottleneck", True): PreActBottleneck,
}


class ResNet(ImageClassifier):
    """Stem, residual stages (stride 2 at the start of each stage after the first), pool, linear."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = c = config
        block = _BLOCKS[(c.block, c.preact)]
        stem = c.stem if c.stem != "auto" else ("imagenet" if c.input_size >= 112 else "cifar")
        if stem == "imagenet":
            layers: list[nn.Module] = [nn.Conv2d(c.in_channels, c.stem_width, 7, 2, 3, bias=False)]
        else:
            layers = [conv3x3(c.in_channels, c.stem_width)]
        if not c.preact:  # pre-activation networks normalise inside the first block
            layers += [nn.BatchNorm2d(c.stem_width), nn.ReLU(inplace=True)]
        if stem == "imagenet":
            layers.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*layers)

        stages: list[nn.Module] = []
        width_in = c.stem_width
        inner = iter(c.inner_widths)
        total, index = sum(c.layers), 0
        for i, (n_blocks, width) in enumerate(zip(c.layers, c.widths, strict=True)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                index += 1
                drop = c.drop_path * index / total  # Huang et al. eq. 4: 1 - p_l = l / L (1 - p_L)
                if c.inner_widths:
                    blocks.append(block(width_in, width, stride, c, next(inner), drop=drop))
                else:
                    blocks.append(block(width_in, width, stride, c, drop=drop))
                width_in = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_act = (
            nn.Sequential(nn.BatchNorm2d(width_in), nn.ReLU(inplace=True)) if c.preact else nn.Identity()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width_in, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.config.zero_init_residual:  # post-activation blocks only (pre-activation ones end in a conv)
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(getattr(m, m.last_bn).weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_act(self.stages(self.stem(x)))  # (B, C, H', W')
        return self.pool(x).flatten(1)  # (B, C)


# --------------------------------------------------------------------------- presets

_IMAGENET = ResNetConfig()
_CIFAR = ResNetConfig(
    layers=(3, 3, 3), widths=(16, 32, 64), shortcut="A", stem="cifar", stem_width=16,
    num_classes=10, input_size=32,
)


def cifar_resnet(depth: int) -> ResNetConfig:
    """ResNet-(6n+2) of He et al. (2016a, Section 4.2): 3 stages of n basic blocks, 16/32/64 maps."""
    if (depth - 2) % 6:
        raise ConfigError(f"CIFAR ResNet depth must be 6n+2, got {depth}.")
    n = (depth - 2) // 6
    return replace(_CIFAR, layers=(n, n, n))


def preact_cifar_resnet(depth: int) -> ResNetConfig:
    """Pre-activation ResNet-(9n+2) with bottlenecks (He et al. 2016b): 164 and 1001 layers."""
    if (depth - 2) % 9:
        raise ConfigError(f"pre-activation bottleneck ResNet depth must be 9n+2, got {depth}.")
    n = (depth - 2) // 9
    return replace(_CIFAR, block="bottleneck", preact=True, shortcut="B", layers=(n, n, n))


def wide_resnet(depth: int, k: int) -> ResNetConfig:
    """WRN-d-k (Zagoruyko & Komodakis 2016): (d - 4) / 6 pre-activation blocks per stage, widths 16k/32k/64k."""
    if (depth - 4) % 6:
        raise ConfigError(f"Wide ResNet depth must be 6n+4, got {depth}.")
    n = (depth - 4) // 6
    return replace(_CIFAR, preact=True, shortcut="B", layers=(n, n, n), widths=(16 * k, 32 * k, 64 * k))


_IMAGENET_LAYERS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
for _d, (_block, _layers) in _IMAGENET_LAYERS.items():
    register_model(
        f"resnet{_d}", ResNet, replace(_IMAGENET, block=_block, layers=_layers), family="resnet",
        doc=f"ResNet-{_d} (He et al. 2016a), ImageNet layout",
    )
    register_model(
        f"preact-resnet{_d}", ResNet, replace(_IMAGENET, block=_block, layers=_layers, preact=True),
        family="resnet", doc=f"pre-activation ResNet-{_d} (He et al. 2016b)",
    )
register_model(
    "preact-resnet200", ResNet, replace(_IMAGENET, block="bottleneck", layers=(3, 24, 36, 3), preact=True),
    family="resnet", doc="pre-activation ResNet-200 (He et al. 2016b)",
)
for _d in (20, 32, 44, 56, 110, 1202):
    register_model(f"resnet{_d}", ResNet, cifar_resnet(_d), family="resnet", doc=f"CIFAR ResNet-{_d} (He et al. 2016a, option A)")
register_model(
    "preact-resnet110", ResNet, replace(cifar_resnet(110), preact=True, shortcut="B"), family="resnet",
    doc="pre-activation CIFAR ResNet-110 (He et al. 2016b)",
)
for _d in (164, 1001):
    register_model(
        f"preact-resnet{_d}", ResNet, preact_cifar_resnet(_d), family="resnet",
        doc=f"pre-activation bottleneck CIFAR ResNet-{_d} (He et al. 2016b)",
    )
for _d, _k in ((16, 4), (16, 8), (22, 8), (28, 10), (40, 2), (40, 4)):
    register_model(f"wrn-{_d}-{_k}", ResNet, wide_resnet(_d, _k), family="resnet", doc=f"Wide ResNet WRN-{_d}-{_k}")
for _d in (50, 101):
    register_model(
        f"wide-resnet{_d}-2", ResNet, replace(_IMAGENET, block="bottleneck", layers=_IMAGENET_LAYERS[_d][1], base_width=128),
        family="resnet", doc=f"Wide ResNet-{_d}-2, ImageNet layout (bottleneck width x2)",
    )
for _name, _layers, _groups, _width in (
    ("resnext50-32x4d", (3, 4, 6, 3), 32, 4),
    ("resnext101-32x8d", (3, 4, 23, 3), 32, 8),
    ("resnext101-64x4d", (3, 4, 23, 3), 64, 4),
):
    register_model(
        _name, ResNet, replace(_IMAGENET, block="bottleneck", layers=_layers, groups=_groups, base_width=_width),
        family="resnet", doc=f"ResNeXt (Xie et al. 2017), {_name.split('-')[1]}",
    )
for _d in (50, 101, 152):
    register_model(
        f"se-resnet{_d}", ResNet, replace(_IMAGENET, block="bottleneck", layers=_IMAGENET_LAYERS[_d][1], se_ratio=1 / 16),
        family="resnet", doc=f"SE-ResNet-{_d} (Hu et al. 2018), reduction 16",
    )
for _g in (8, 16):
    register_model(
        f"resnext29-{_g}x64d", ResNet,
        replace(_CIFAR, block="bottleneck", shortcut="B", stem_width=64, widths=(64, 128, 256), groups=_g, base_width=64),
        family="resnet", doc=f"CIFAR ResNeXt-29 {_g}x64d (Xie et al. 2017)",
    )
