"""Convolutional building blocks shared by the ResNet, MobileNet and EfficientNet families.

- :func:`make_divisible`: channel counts rounded to a multiple of 8 (the rule of
  the MobileNet and EfficientNet reference code, so that width multipliers give
  hardware-friendly widths): round to the nearest multiple, never more than 10%
  below the unrounded value.
- :class:`SqueezeExcitation` (Hu et al., 2018, "Squeeze-and-Excitation
  Networks"): eq. (2) z_c = mean over H x W of u_c (squeeze), eq. (3)
  s = sigma(W_2 delta(W_1 z)) (excitation, W_1 reducing C to C/r), eq. (4)
  x~_c = s_c u_c (scale).
- :class:`DropPath`, stochastic depth (Huang et al., 2016, "Deep Networks with
  Stochastic Depth"): eq. (2) H_l = ReLU(b_l f_l(H_{l-1}) + id(H_{l-1})) with
  b_l ~ Bernoulli(p_l) in training. The paper drops a block for the whole
  mini-batch and multiplies f_l by p_l at test time (eq. 5); here, as in the
  reference implementations that followed (timm, torchvision), each example
  draws its own b_l and the kept branches are divided by p_l in training, so
  that evaluation is the plain residual network (the same expectation).
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, default ``divisor``),
    rounded up once more where rounding would lose more than 10%."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class SqueezeExcitation(nn.Module):
    """Channel attention: global average pool, 1x1 conv to ``squeeze`` channels, activation, 1x1 conv, gate.

    The two fully connected layers of eq. (3) are 1x1 convolutions with biases
    (as in the reference implementations), so a module adds
    ``2 * channels * squeeze + squeeze + channels`` parameters.
    """

    def __init__(
        self, channels: int, squeeze: int, activation: type[nn.Module] = nn.ReLU, gate: type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = activation()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1), eq. 2
        s = self.gate(self.fc2(self.act(self.fc1(s))))  # eq. 3
        return x * s  # eq. 4


class DropPath(nn.Module):
    """Drop the residual branch of each example with probability ``p`` in training; the identity in evaluation.

    Kept branches are scaled by ``1 / (1 - p)``. With ``p = 0`` no random
    number is drawn, so a network with stochastic depth off consumes the
    generator exactly as one without the module.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability must lie in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, 1, 1): b_l per example
        return x * mask / keep if keep > 0.0 else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
