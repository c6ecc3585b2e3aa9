"""Small factories for activations and normalisation layers, by name."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "elu", "leaky-relu")
NORMS = ("none", "batch", "layer")


def activation(name: str) -> nn.Module:
    """A fresh activation module: relu, gelu, silu, tanh, elu or leaky-relu (slope 0.01)."""
    table = {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
        "elu": nn.ELU,
        "leaky-relu": nn.LeakyReLU,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(table)}")
    return table[name]()


def gain_name(name: str) -> str:
    """The ``torch.nn.init.calculate_gain`` name closest to an activation."""
    return {"tanh": "tanh", "leaky-relu": "leaky_relu"}.get(name, "relu")


def norm1d(name: str, width: int) -> nn.Module:
    """Normalisation over features of a (B, width) tensor: none, batch or layer."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm1d(width)
    if name == "layer":
        return nn.LayerNorm(width)
    raise ValueError(f"unknown norm {name!r}; choose from {', '.join(NORMS)}")


def hidden_stack(width_in: int, depth: int, width: int, act: str, norm: str = "none", dropout: float = 0.0) -> nn.Sequential:
    """``depth`` x (Linear -> norm -> activation -> dropout): the hidden layers of an MLP."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width_in, width), norm1d(norm, width), activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    return nn.Sequential(*layers)
