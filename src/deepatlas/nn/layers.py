"""Small factories for activations and normalisation layers, by name.

- SELU (Klambauer et al. 2017): lambda (x if x > 0 else alpha (e^x - 1)), self-normalising with LeCun
  initialisation and alpha dropout;
- PReLU (He et al. 2015): max(0, x) + a min(0, x) with a learned slope a (one per layer, from 0.25);
- instance normalisation (Ulyanov et al. 2016): each image's channel standardised over its own H x W;
- weight normalisation (Salimans & Kingma 2016, eq. 2): w = g v / ||v||, g and v trained (one g per output unit).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import weight_norm

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "elu", "leaky-relu", "selu", "prelu")
NORMS = ("none", "batch", "layer")
NORMS_2D = ("none", "batch", "instance")


def activation(name: str) -> nn.Module:
    """A fresh activation module: relu, gelu, silu, tanh, elu, leaky-relu (slope 0.01), selu or prelu."""
    table = {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
        "elu": nn.ELU,
        "leaky-relu": nn.LeakyReLU,
        "selu": nn.SELU,
        "prelu": nn.PReLU,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(table)}")
    return table[name]()


def gain_name(name: str) -> str:
    """The ``torch.nn.init.calculate_gain`` name closest to an activation."""
    return {"tanh": "tanh", "leaky-relu": "leaky_relu", "selu": "selu"}.get(name, "relu")


def norm1d(name: str, width: int) -> nn.Module:
    """Normalisation over features of a (B, width) tensor: none, batch or layer."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm1d(width)
    if name == "layer":
        return nn.LayerNorm(width)
    raise ValueError(f"unknown norm {name!r}; choose from {', '.join(NORMS)}")


def norm2d(name: str, channels: int) -> nn.Module:
    """Normalisation of (B, C, H, W) feature maps: none, batch or instance (affine, with running statistics off)."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {name!r}; choose from {', '.join(NORMS_2D)}")


def hidden_stack(width_in: int, depth: int, width: int, act: str, norm: str = "none", dropout: float = 0.0) -> nn.Sequential:
    """``depth`` x (Linear -> norm -> activation -> dropout): the hidden layers of an MLP.

    With SELU the dropout is alpha dropout, which keeps the self-normalised mean and variance (Klambauer et al.).
    """
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width_in, width), norm1d(norm, width), activation(act)]
        if dropout > 0:
            layers.append(nn.AlphaDropout(dropout) if act == "selu" else nn.Dropout(dropout))
        width_in = width
    return nn.Sequential(*layers)


def apply_weight_norm(module: nn.Module) -> nn.Module:
    """Reparametrise the weight of every linear and convolutional layer of ``module`` as g v / ||v|| (in place;
    call after initialisation: g = ||w||, v = w, so the function is unchanged)."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            weight_norm(m, "weight", dim=0)
    return module
