"""Shared building blocks used by several model families."""

from .init import INIT_SCHEMES, init_weights
from .layers import (
    ACTIVATIONS,
    NORMS,
    NORMS_2D,
    activation,
    apply_weight_norm,
    gain_name,
    hidden_stack,
    norm1d,
    norm2d,
)

__all__ = [
    "ACTIVATIONS", "INIT_SCHEMES", "NORMS", "NORMS_2D", "activation", "apply_weight_norm", "gain_name", "hidden_stack",
    "init_weights", "norm1d", "norm2d",
]
