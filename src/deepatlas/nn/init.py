"""Weight initialisation schemes.

- Xavier/Glorot (Glorot & Bengio, 2010): Var[w] = 2 / (fan_in + fan_out), uniform.
- He/Kaiming (He et al., 2015): Var[w] = 2 / fan_in (gain for ReLU), normal.
- LeCun (LeCun et al., 1998): Var[w] = 1 / fan_in, normal.
- Orthogonal (Saxe et al., 2013): a (scaled) orthogonal matrix per layer.

Biases start at zero; normalisation layers at weight 1, bias 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INIT_SCHEMES = ("default", "xavier", "he", "lecun", "orthogonal")

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


@torch.no_grad()
def init_weights(module: nn.Module, scheme: str, nonlinearity: str = "relu") -> nn.Module:
    """Initialise every linear/conv layer of ``module`` with ``scheme`` (in place).

    ``default`` leaves PyTorch's own initialisation untouched.
    """
    if scheme == "default":
        return module
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose from {', '.join(INIT_SCHEMES)}")
    gain = nn.init.calculate_gain(nonlinearity) if nonlinearity != "leaky_relu" else nn.init.calculate_gain("leaky_relu", 0.01)
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            w = m.weight
            fan_in = w[0].numel()
            if scheme == "xavier":
                nn.init.xavier_uniform_(w, gain=1.0)
            elif scheme == "he":
                nn.init.normal_(w, 0.0, gain / math.sqrt(fan_in))
            elif scheme == "lecun":
                nn.init.normal_(w, 0.0, 1.0 / math.sqrt(fan_in))
            elif scheme == "orthogonal":
                nn.init.orthogonal_(w, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and getattr(m, "weight", None) is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module
