"""The multilayer perceptron (Rumelhart, Hinton & Williams, 1986).

h_0 = x, h_l = dropout(phi(norm(W_l h_{l-1} + b_l))) for l = 1..depth,
logits = W_out h_depth + b_out. Images are flattened to vectors first.
Options: SELU (Klambauer et al. 2017; use ``init: lecun``, dropout becomes alpha dropout), PReLU
(He et al. 2015), weight normalisation of every layer (Salimans & Kingma 2016).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from ..nn import apply_weight_norm, gain_name, hidden_stack, init_weights
from ..registry import register_model
from ..schema import option
from .base import ImageClassifier


@dataclass(frozen=True)
class MLPConfig:
    in_features: Optional[int] = option(None, "input size (null: in_channels * input_size**2)", low=1)
    in_channels: int = option(1, "image channels (from the data)", low=1)
    input_size: int = option(28, "image side in pixels (from the data)", low=1)
    num_classes: int = option(10, "output classes (from the data)", low=1)
    depth: int = option(2, "number of hidden layers", low=0)
    width: int = option(256, "units per hidden layer", low=1)
    activation: Literal["relu", "gelu", "silu", "tanh", "elu", "leaky-relu", "selu", "prelu"] = option(
        "relu", "hidden activation (selu: alpha dropout; prelu: one learned slope per layer)")
    norm: Literal["none", "batch", "layer"] = option("none", "normalisation after each hidden linear layer")
    dropout: float = option(0.0, "dropout probability after each hidden layer", low=0.0, high=1.0)
    init: Literal["default", "xavier", "he", "lecun", "orthogonal"] = option("default", "weight initialisation scheme")
    weight_norm: bool = option(False, "weight normalisation w = g v / ||v|| of every layer (Salimans & Kingma 2016)")


class MLP(ImageClassifier):
    """A fully connected network on flattened inputs."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        width_in = c.in_features or c.in_channels * c.input_size * c.input_size
        self.body = hidden_stack(width_in, c.depth, c.width, c.activation, c.norm, c.dropout)
        self.head = nn.Linear(c.width if c.depth else width_in, c.num_classes)
        init_weights(self, c.init, gain_name(c.activation))
        if c.weight_norm:
            apply_weight_norm(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))  # (B, width)


register_model("mlp", MLP, MLPConfig(), family="mlp", doc="MLP, 2 hidden layers of 256 ReLU units")
register_model(
    "mlp-wide", MLP, MLPConfig(depth=3, width=1024, dropout=0.2), family="mlp",
    doc="MLP, 3 hidden layers of 1024 units with dropout 0.2",
)
