"""The classic convolutional networks: LeNet-5, AlexNet, VGG and GoogLeNet.

- LeNet-5 (LeCun et al., 1998): conv 6@5x5, subsample, conv 16@5x5, subsample,
  fully connected 120, 84, output.
- AlexNet (Krizhevsky, Sutskever & Hinton, 2012): five convolutions (96, 256,
  384, 384, 256 maps; conv2/4/5 split across two GPUs, i.e. grouped), local
  response normalisation, overlapping max pooling, two 4096-unit dropout layers.
- VGG (Simonyan & Zisserman, 2014): stacks of 3x3 convolutions in five stages
  of 64-128-256-512-512 maps, each followed by 2x2 max pooling, then
  4096-4096 fully connected layers; configurations A (11), B (13), D (16), E (19).
  Options beyond the paper: BatchNorm or InstanceNorm (Ulyanov et al. 2016) after every convolution,
  SELU / PReLU / ELU activations, weight normalisation (Salimans & Kingma 2016) of every layer.
- GoogLeNet / Inception-v1 (Szegedy et al., 2014): nine Inception modules of
  parallel 1x1, 3x3, 5x5 convolutions and pooling, with 1x1 reductions
  (Table 1 of the paper).

The spatial size of each network's last feature map is computed from
``input_size`` so that the fully connected layers have their paper sizes at the
paper's input resolution (224x224 for AlexNet, VGG and GoogLeNet; 32x32 for
LeNet-5) and adapt at other resolutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..nn import activation, apply_weight_norm, norm2d
from ..registry import register_model
from ..schema import option
from .base import ImageClassifier

# --------------------------------------------------------------------------- LeNet-5


@dataclass(frozen=True)
class LeNet5Config:
    in_channels: int = option(1, "image channels", low=1)
    num_classes: int = option(10, "output classes", low=1)
    input_size: int = option(32, "image side in pixels; smaller images are zero-padded to 32 in conv1", low=1)
    activation: Literal["tanh", "relu"] = option("tanh", "hidden activation (the paper: scaled tanh)")
    pool: Literal["avg", "max"] = option("avg", "subsampling (the paper: average with a learned scale)")


class LeNet5(ImageClassifier):
    """LeNet-5 with a dense C3 layer and a linear output layer.

    Differences from the 1998 paper, as in most modern re-implementations: C3
    connects to all six S2 maps (the paper's sparse table has 1,516 instead of
    2,416 weights), subsampling has no trainable coefficient, and the output is
    linear + softmax instead of Euclidean RBF units. 61,706 parameters at 32x32.
    """

    def __init__(self, config: LeNet5Config) -> None:
        super().__init__()
        self.config = c = config
        pad = max(0, (32 - c.input_size) // 2)  # 28x28 MNIST-style images: pad to the paper's 32x32
        act = nn.Tanh if c.activation == "tanh" else nn.ReLU
        pool = nn.AvgPool2d if c.pool == "avg" else nn.MaxPool2d
        self.features = nn.Sequential(
            nn.Conv2d(c.in_channels, 6, 5, padding=pad), act(), pool(2),  # C1, S2
            nn.Conv2d(6, 16, 5), act(), pool(2),  # C3, S4
        )
        side = ((c.input_size + 2 * pad - 4) // 2 - 4) // 2
        self.fc = nn.Sequential(nn.Linear(16 * side * side, 120), act(), nn.Linear(120, 84), act())  # C5, F6
        self.head = nn.Linear(84, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))  # (B, 84)


# --------------------------------------------------------------------------- AlexNet


@dataclass(frozen=True)
class AlexNetConfig:
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels (at least 63)", low=1)
    groups: int = option(2, "groups of conv2, conv4, conv5 (2: the paper's two-GPU split; 1: one tower)", low=1)
    lrn: bool = option(True, "local response normalisation after conv1 and conv2 (k=2, n=5, alpha=1e-4, beta=0.75)")
    dropout: float = option(0.5, "dropout before each 4096-unit layer", low=0.0, high=1.0)


class AlexNet(ImageClassifier):
    """AlexNet; 60,965,224 parameters with the paper's grouped convolutions at 224x224."""

    def __init__(self, config: AlexNetConfig) -> None:
        super().__init__()
        self.config = c = config
        side = (c.input_size + 4 - 11) // 4 + 1  # conv1, stride 4, padding 2
        for _ in range(3):  # three overlapping 3x3/2 max pools
            side = (side - 3) // 2 + 1
        if side < 1 or c.input_size < 63:
            raise ConfigError(
                f"model.input_size: AlexNet needs images of at least 63x63 pixels, got {c.input_size} "
                "(resize the data, e.g. data.resize=64)."
            )

        def lrn() -> nn.Module:
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0) if c.lrn else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(c.in_channels, 96, 11, stride=4, padding=2), nn.ReLU(inplace=True), lrn(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=c.groups), nn.ReLU(inplace=True), lrn(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=c.groups), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=c.groups), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.fc = nn.Sequential(
            nn.Dropout(c.dropout), nn.Linear(256 * side * side, 4096), nn.ReLU(inplace=True),
            nn.Dropout(c.dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(4096, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))  # (B, 4096)


# --------------------------------------------------------------------------- VGG


@dataclass(frozen=True)
class VGGConfig:
    stages: tuple[int, ...] = option((2, 2, 3, 3, 3), "3x3 convolutions per stage (VGG-16: 2,2,3,3,3)", low=1)
    widths: tuple[int, ...] = option((64, 128, 256, 512, 512), "channels per stage", low=1)
    batch_norm: bool = option(False, "BatchNorm after every convolution (a later addition)")
    instance_norm: bool = option(False, "InstanceNorm after every convolution (Ulyanov et al. 2016), instead of BatchNorm")
    activation: Literal["relu", "elu", "leaky-relu", "selu", "prelu"] = option(
        "relu", "activation after every convolution and hidden fully connected layer (the paper: relu)")
    weight_norm: bool = option(False, "weight normalisation w = g v / ||v|| of every layer (Salimans & Kingma 2016)")
    fc_width: int = option(4096, "units of the two hidden fully connected layers", low=1)
    dropout: float = option(0.5, "dropout after each hidden fully connected layer", low=0.0, high=1.0)
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels (at least 2**stages)", low=1)

    def validate(self, path: str) -> None:
        if len(self.stages) != len(self.widths):
            raise ConfigError(f"{path}.widths: needs one width per stage ({len(self.stages)}), got {len(self.widths)}.")
        if self.batch_norm and self.instance_norm:
            raise ConfigError(f"{path}.instance_norm: one normalisation per convolution; set {path}.batch_norm=false.")


class VGG(ImageClassifier):
    """VGG; VGG-16 has 138,357,544 parameters at 224x224 with 1000 classes."""

    def __init__(self, config: VGGConfig) -> None:
        super().__init__()
        self.config = c = config
        side = c.input_size >> len(c.stages)  # each stage ends with a 2x2/2 max pool
        if side < 1:
            raise ConfigError(
                f"model.input_size: VGG with {len(c.stages)} stages needs images of at least "
                f"{2 ** len(c.stages)}x{2 ** len(c.stages)} pixels, got {c.input_size} (e.g. data.resize=32)."
            )
        def act() -> nn.Module:
            return nn.ReLU(inplace=True) if c.activation == "relu" else activation(c.activation)

        norm = "batch" if c.batch_norm else "instance" if c.instance_norm else "none"
        layers: list[nn.Module] = []
        width_in = c.in_channels
        for n_convs, width in zip(c.stages, c.widths, strict=True):
            for _ in range(n_convs):
                layers.append(nn.Conv2d(width_in, width, 3, padding=1))
                if norm != "none":
                    layers.append(norm2d(norm, width))
                layers.append(act())
                width_in = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(width_in * side * side, c.fc_width), act(), nn.Dropout(c.dropout),
            nn.Linear(c.fc_width, c.fc_width), act(), nn.Dropout(c.dropout),
        )
        self.head = nn.Linear(c.fc_width, c.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        if c.weight_norm:
            apply_weight_norm(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))  # (B, fc_width)


# --------------------------------------------------------------------------- GoogLeNet

# Table 1 of Szegedy et al. (2014): #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
_INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


@dataclass(frozen=True)
class GoogLeNetConfig:
    norm: Literal["lrn", "batch"] = option("lrn", "lrn: the paper (LRN after the stem); batch: BatchNorm after every conv")
    dropout: float = option(0.4, "dropout before the classifier (the paper: 40%)", low=0.0, high=1.0)
    in_channels: int = option(3, "image channels", low=1)
    num_classes: int = option(1000, "output classes", low=1)
    input_size: int = option(224, "image side in pixels", low=16)


def _conv(c_in: int, c_out: int, k: int, norm: str, stride: int = 1) -> nn.Sequential:
    if norm == "batch":
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
        )
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2), nn.ReLU(inplace=True))


class Inception(nn.Module):
    """Four parallel branches concatenated along channels (Figure 2b of the paper)."""

    def __init__(self, c_in: int, widths: tuple[int, ...], norm: str) -> None:
        super().__init__()
        n1, r3, n3, r5, n5, pp = widths
        self.b1 = _conv(c_in, n1, 1, norm)
        self.b3 = nn.Sequential(_conv(c_in, r3, 1, norm), _conv(r3, n3, 3, norm))
        self.b5 = nn.Sequential(_conv(c_in, r5, 1, norm), _conv(r5, n5, 5, norm))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv(c_in, pp, 1, norm))
        self.out_channels = n1 + n3 + n5 + pp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class GoogLeNet(ImageClassifier):
    """GoogLeNet (Inception-v1) without the two auxiliary classifiers.

    The auxiliary heads only add training-time loss terms (weight 0.3) and are
    discarded at inference; they are left out here. 6,998,552 parameters at
    1000 classes with LRN, matching the paper's ~7M (Table 1 sums to 6.8M).
    """

    def __init__(self, config: GoogLeNetConfig) -> None:
        super().__init__()
        self.config = c = config

        def lrn() -> nn.Module:
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if c.norm == "lrn" else nn.Identity()

        self.stem = nn.Sequential(
            _conv(c.in_channels, 64, 7, c.norm, stride=2), nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
            _conv(64, 64, 1, c.norm), _conv(64, 192, 3, c.norm), lrn(), nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        blocks: list[nn.Module] = []
        width = 192
        for name, widths in _INCEPTION.items():
            if name in ("4a", "5a"):
                blocks.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            block = Inception(width, widths, c.norm)
            blocks.append(block)
            width = block.out_channels
        self.inception = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)  # the paper's 7x7 average pool at 224x224
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(width, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.pool(self.inception(self.stem(x))).flatten(1))  # (B, 1024)


# --------------------------------------------------------------------------- the metric feature network


@dataclass(frozen=True)
class FeatureNetConfig:
    in_channels: int = option(1, "image channels", low=1)
    num_classes: int = option(10, "output classes", low=1)
    input_size: int = option(28, "image side in pixels", low=4)
    widths: tuple[int, ...] = option((32, 64, 128), "channels of the three stages")


class FeatureNet(ImageClassifier):
    """The fixed feature network of the sample-quality metrics (``metrics/generative.py``).

    A VGG-style network for small grey images in [0, 1] (no input normalisation, so that
    generated images go in as they are): two 3x3 conv-BN-ReLU layers at full resolution,
    2x2 max pool, two at half resolution, max pool, one at quarter resolution, global
    average pool. The 128 pooled channels are the features (the Frechet distance's
    space); the head's softmax gives the Inception-Score analogue and class coverage.
    """

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        self.config = c = config
        a, b, w = c.widths

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *conv(c.in_channels, a), *conv(a, a), nn.MaxPool2d(2),
            *conv(a, b), *conv(b, b), nn.MaxPool2d(2),
            *conv(b, w), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(w, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (B, widths[-1])


# --------------------------------------------------------------------------- presets

register_model(
    "featurenet", FeatureNet, FeatureNetConfig(), family="cnn",
    doc="the fixed feature network of the generative metrics (Frechet distance, IS, coverage)",
)
register_model("lenet5", LeNet5, LeNet5Config(), family="cnn", doc="LeNet-5 (LeCun et al. 1998)")
register_model("alexnet", AlexNet, AlexNetConfig(), family="cnn", doc="AlexNet (Krizhevsky et al. 2012), grouped as in the paper")
_VGG_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
for _depth, _stages in _VGG_STAGES.items():
    register_model(f"vgg{_depth}", VGG, VGGConfig(stages=_stages), family="cnn", doc=f"VGG-{_depth} (Simonyan & Zisserman 2014)")
    register_model(
        f"vgg{_depth}-bn", VGG, VGGConfig(stages=_stages, batch_norm=True), family="cnn",
        doc=f"VGG-{_depth} with BatchNorm",
    )
register_model("googlenet", GoogLeNet, GoogLeNetConfig(), family="cnn", doc="GoogLeNet / Inception-v1 (Szegedy et al. 2014), no aux heads")
register_model(
    "googlenet-bn", GoogLeNet, GoogLeNetConfig(norm="batch", dropout=0.2), family="cnn",
    doc="GoogLeNet with BatchNorm after every convolution",
)
