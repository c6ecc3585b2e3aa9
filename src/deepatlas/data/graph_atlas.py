"""The graph atlas: graph classification by structure alone (``graph-atlas``).

Every connected graph of 3 to 7 nodes from the Atlas of Graphs (Read &
Wilson, 1998; ``networkx.graph_atlas_g``), 994 graphs, with constant node
features so that structure alone decides the label, the setting where GIN's
expressivity matters (Xu et al., 2019). Graphs by size: 2, 6, 21, 112 and 853
of 3..7 nodes. Labels, with the class balance: ``triangle`` (contains a
triangle) 906 yes / 88 no; ``bipartite`` 70 yes / 924 no (the 18 graphs that
are neither bipartite nor have a triangle hold a 5- or 7-cycle); ``cycle4``
(contains a 4-cycle as a subgraph) 905 yes / 89 no. The classes are
imbalanced (about 91% / 9%): the majority-class baseline is 91.1%, 93.0% and
91.0% accuracy, so compare against it (or read per-class recall) rather than
against 50%. The test split is fold ``fold`` of a stratified ``folds``-fold
split seeded by ``seed``; the validation split is a stratified
``data.val_fraction`` of the remaining folds drawn with ``data.split_seed``
(so the test fold never informs early stopping or model selection). Batches
are block-diagonal graphs (:class:`~.graph_bundles.GraphLevelData`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..schema import option
from .graph import Graph
from .graph_bundles import GraphLevelData
from .images import stratified_split

ATLAS_LABELS = {
    "triangle": ("no triangle", "triangle"),
    "bipartite": ("not bipartite", "bipartite"),
    "cycle4": ("no 4-cycle", "4-cycle"),
}


def _atlas_label(adjacency: np.ndarray, label: str) -> int:
    if label == "triangle":  # trace(A^3) counts each triangle 6 times
        return int(np.trace(np.linalg.matrix_power(adjacency, 3)) > 0)
    if label == "cycle4":  # a 4-cycle u-a-v-b exists iff two distinct nodes share two neighbours
        common = adjacency @ adjacency
        np.fill_diagonal(common, 0)
        return int((common >= 2).any())
    import networkx as nx

    return int(nx.is_bipartite(nx.from_numpy_array(adjacency)))


def graph_atlas(label: str = "triangle") -> list[Graph]:
    """Connected graphs of 3 to 7 nodes from ``networkx.graph_atlas_g()`` (994), in atlas order.

    Node features are a constant 1 (N, 1); ``y`` is a 0-dim label (see
    :data:`ATLAS_LABELS`).
    """
    import networkx as nx

    if label not in ATLAS_LABELS:
        raise DataError(f"graph-atlas: unknown label {label!r} ({', '.join(ATLAS_LABELS)}).")
    graphs = []
    for g in nx.graph_atlas_g():
        if g.number_of_nodes() < 3 or not nx.is_connected(g):
            continue
        adjacency = nx.to_numpy_array(g, nodelist=sorted(g.nodes), dtype=np.int64)
        edges = torch.from_numpy(np.stack(np.nonzero(adjacency))).long()  # both directions, sorted
        y = torch.tensor(_atlas_label(adjacency, label))
        graphs.append(Graph(torch.ones(g.number_of_nodes(), 1), edges, y))
    return graphs


def kfold_indices(labels: np.ndarray | torch.Tensor, k: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` indices of fold ``fold`` of a stratified, shuffled ``k``-fold split (sorted)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if not 0 <= fold < k:
        raise ConfigError(f"data.fold: {fold} is not in 0..{k - 1} (data.folds={k}).")
    if k < 2 or k > len(labels):
        raise ConfigError(f"data.folds: {k} folds of {len(labels)} examples; use 2..{len(labels)}.")
    splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed % 2**32).split(np.zeros(len(labels)), labels)
    train, test = list(splits)[fold]
    return np.sort(train), np.sort(test)


# --------------------------------------------------------------------------- the dataset


@dataclass(frozen=True)
class GraphAtlasOptions:
    """Options of the graph-atlas graph classification dataset."""

    label: Literal["triangle", "bipartite", "cycle4"] = option(
        "triangle", "what to predict: contains a triangle, is bipartite, contains a 4-cycle"
    )
    folds: int = option(10, "stratified folds; one is the test split", low=2)
    fold: int = option(0, "which fold is the test split (0..folds-1)", low=0)
    seed: int = option(0, "seed of the fold assignment")

    def validate(self, path: str) -> None:
        if self.fold >= self.folds:
            raise ConfigError(f"{path}.fold: {self.fold} is not in 0..{self.folds - 1} ({path}.folds={self.folds}).")


def load_graph_atlas(config: Any, state_dir: Path | None = None) -> GraphLevelData:
    opts: GraphAtlasOptions = config.options
    graphs = graph_atlas(opts.label)
    labels = np.array([int(g.y) for g in graphs])  # type: ignore[arg-type]
    rest, test = kfold_indices(labels, opts.folds, opts.fold, opts.seed)
    train, val = stratified_split(labels[rest], config.val_fraction, config.split_seed)
    train, val = np.sort(rest[train]), np.sort(rest[val])
    if config.limit is not None:
        train = train[: config.limit]
    splits = {k: [graphs[i] for i in idx] for k, idx in (("train", train), ("val", val), ("test", test))}
    extra = {"label": opts.label, "folds": opts.folds, "fold": opts.fold, "class_counts": np.bincount(labels).tolist()}
    return GraphLevelData(f"graph-atlas:{opts.label}", splits, list(ATLAS_LABELS[opts.label]), config, extra)


__all__ = ["ATLAS_LABELS", "GraphAtlasOptions", "graph_atlas", "kfold_indices", "load_graph_atlas"]
