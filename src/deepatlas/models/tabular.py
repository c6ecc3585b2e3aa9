"""Networks for tables: an MLP and a residual MLP over numeric features and categorical embeddings.

Every tabular model reads a :class:`~deepatlas.data.tabular.TabularBatch` (standardised
numbers (B, P) and category codes (B, C)) and returns (B, num_outputs): class logits, the
raw parameters of a distribution, quantiles, a log-risk or hazards, as the task asks
(``num_outputs`` comes from the task, ``num_numeric`` and ``cardinalities`` from the data).

- Categorical embeddings (Guo & Berkhahn 2016, "Entity embeddings of categorical
  variables"): code c of column j -> E_j[c] in R^{d_j}, with d_j = min(max_embedding,
  round(1.6 * n_j ** 0.56)) (fastai's rule of thumb) unless ``embedding_dim`` is set; row 0 is
  the slot of unknown categories.
- ``tabular-mlp``: x = [numbers, embeddings] -> depth x (Linear -> norm -> activation ->
  dropout) -> Linear.
- ``tabular-resnet`` (Gorishniy, Rubachev, Khrulkov & Babenko 2021, "Revisiting deep
  learning models for tabular data", section 3.2): x -> Linear(d) -> n_blocks x
  [x + Dropout(Linear(Dropout(ReLU(Linear(BatchNorm(x))))))] -> BatchNorm -> ReLU -> Linear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from ..nn import gain_name, hidden_stack, init_weights
from ..registry import register_model
from ..schema import option


def embedding_size(cardinality: int, cap: int) -> int:
    """fastai's rule of thumb for an embedding's width, at most ``cap``."""
    return max(1, min(cap, round(1.6 * cardinality**0.56)))


class FeatureEmbedding(nn.Module):
    """[numbers, E_1[c_1], ..., E_C[c_C]]: (B, P) and (B, C) -> (B, P + sum d_j)."""

    def __init__(self, num_numeric: int, cardinalities: tuple[int, ...], dim: int | None, cap: int) -> None:
        super().__init__()
        self.num_numeric = num_numeric
        self.embeddings = nn.ModuleList(nn.Embedding(n, dim or embedding_size(n, cap)) for n in cardinalities)
        self.out_features = num_numeric + sum(e.embedding_dim for e in self.embeddings)

    def forward(self, x) -> torch.Tensor:
        parts = [x.numeric] + [emb(x.categorical[:, j]) for j, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class TabularInputs:
    """The keys every tabular network shares: what the data and the task decide."""

    num_numeric: int = option(8, "numeric inputs and missing-value indicators (from the data)", low=0)
    cardinalities: tuple[int, ...] = option((), "categories of each categorical column, with the unknown slot (from the data)")
    num_outputs: int = option(1, "outputs: classes, distribution parameters, quantiles... (from the task)", low=1)


@dataclass(frozen=True)
class EmbeddedInputs(TabularInputs):
    """A tabular network that concatenates numbers and categorical embeddings (:class:`FeatureEmbedding`)."""

    embedding_dim: Optional[int] = option(None, "width of every categorical embedding (null: fastai's rule per column)", low=1)
    max_embedding: int = option(32, "largest embedding width of the rule of thumb", low=1)


@dataclass(frozen=True)
class TabularMLPConfig(EmbeddedInputs):
    depth: int = option(3, "hidden layers", low=0)
    width: int = option(256, "units per hidden layer", low=1)
    activation: Literal["relu", "gelu", "silu", "tanh", "elu", "leaky-relu"] = option("relu", "hidden activation")
    norm: Literal["none", "batch", "layer"] = option("none", "normalisation after each hidden linear layer")
    dropout: float = option(0.1, "dropout after each hidden layer", low=0.0, high=1.0)
    init: Literal["default", "xavier", "he", "lecun", "orthogonal"] = option("default", "weight initialisation scheme")


class TabularMLP(nn.Module):
    """An MLP on numbers and categorical embeddings."""

    def __init__(self, config: TabularMLPConfig) -> None:
        super().__init__()
        self.config = c = config
        self.features = FeatureEmbedding(c.num_numeric, tuple(c.cardinalities), c.embedding_dim, c.max_embedding)
        width_in = self.features.out_features
        self.body = hidden_stack(width_in, c.depth, c.width, c.activation, c.norm, c.dropout)
        self.head = nn.Linear(c.width if c.depth else width_in, c.num_outputs)
        init_weights(self, c.init, gain_name(c.activation))

    def forward_features(self, x) -> torch.Tensor:
        return self.body(self.features(x))  # (B, width)

    def forward(self, x) -> torch.Tensor:
        return self.head(self.forward_features(x))  # (B, num_outputs)


@dataclass(frozen=True)
class TabularResNetConfig(EmbeddedInputs):
    n_blocks: int = option(2, "residual blocks", low=1)
    width: int = option(192, "d, the width of the residual stream", low=1)
    hidden_factor: float = option(2.0, "d_hidden = hidden_factor * d inside each block", low=0.1)
    hidden_dropout: float = option(0.2, "dropout after the first linear layer of a block", low=0.0, high=1.0)
    residual_dropout: float = option(0.0, "dropout of a block's output before it joins the stream", low=0.0, high=1.0)


class ResidualBlock(nn.Module):
    """x + Dropout(Linear(Dropout(ReLU(Linear(BatchNorm(x))))))."""

    def __init__(self, width: int, hidden: int, hidden_dropout: float, residual_dropout: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width)
        self.linear1, self.linear2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.hidden_dropout, self.residual_dropout = nn.Dropout(hidden_dropout), nn.Dropout(residual_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden_dropout(torch.relu(self.linear1(self.norm(x))))
        return x + self.residual_dropout(self.linear2(h))


class TabularResNet(nn.Module):
    """The tabular ResNet of Gorishniy et al. (2021)."""

    def __init__(self, config: TabularResNetConfig) -> None:
        super().__init__()
        self.config = c = config
        self.features = FeatureEmbedding(c.num_numeric, tuple(c.cardinalities), c.embedding_dim, c.max_embedding)
        self.stem = nn.Linear(self.features.out_features, c.width)
        hidden = max(1, round(c.width * c.hidden_factor))
        self.blocks = nn.Sequential(*(ResidualBlock(c.width, hidden, c.hidden_dropout, c.residual_dropout) for _ in range(c.n_blocks)))
        self.norm = nn.BatchNorm1d(c.width)
        self.head = nn.Linear(c.width, c.num_outputs)

    def forward_features(self, x) -> torch.Tensor:
        return torch.relu(self.norm(self.blocks(self.stem(self.features(x)))))  # (B, d)

    def forward(self, x) -> torch.Tensor:
        return self.head(self.forward_features(x))


register_model(
    "tabular-mlp", TabularMLP, TabularMLPConfig(), family="tabular",
    doc="MLP on numbers + categorical embeddings, 3 hidden layers of 256 ReLU units, dropout 0.1",
)
register_model(
    "tabular-resnet", TabularResNet, TabularResNetConfig(), family="tabular",
    doc="tabular ResNet (Gorishniy et al. 2021): 2 residual blocks, d=192, d_hidden=384",
)
