"""Shared building blocks used by several model families."""

from .init import INIT_SCHEMES, init_weights
from .layers import ACTIVATIONS, NORMS, activation, gain_name, hidden_stack, norm1d

__all__ = ["ACTIVATIONS", "INIT_SCHEMES", "NORMS", "activation", "gain_name", "hidden_stack", "init_weights", "norm1d"]
