"""Shared building blocks used by several model families."""

from .init import INIT_SCHEMES, init_weights
from .layers import ACTIVATIONS, NORMS, activation, gain_name, norm1d

__all__ = ["ACTIVATIONS", "INIT_SCHEMES", "NORMS", "activation", "gain_name", "init_weights", "norm1d"]
