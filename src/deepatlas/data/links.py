"""Link prediction data: a graph's edges split into message-passing, validation and test edges.

As in the link-prediction experiments of Kipf & Welling's graph auto-encoders (2016) and PyG's
``RandomLinkSplit``: each undirected edge is held out with probability ``links_val`` /
``links_test``; the model passes messages over the remaining (training) edges only, in both
directions; validation and test edges come with as many node pairs that are not edges of the
full graph (negatives fixed by the seed, so every evaluation scores the same pairs). Training
negatives are drawn anew each step by the task. A batch is ``(graph, LinkBatch)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from ..errors import DataError
from ..schema import option
from .bundle import SplitBundle
from .graph import Graph


@dataclass(frozen=True)
class LinkOptions:
    """Link prediction instead of node classification (any node-level graph dataset)."""

    links: bool = option(False, "link prediction: hold out edges instead of predicting node labels")
    links_val: float = option(0.05, "links: fraction of edges held out for validation", low=0.0, high=0.5)
    links_test: float = option(0.1, "links: fraction of edges held out for testing", low=0.0, high=0.5)
    embedding_dim: int = option(64, "links: width of the node embeddings the model outputs (its num_classes)", low=1)


class LinkBatch(NamedTuple):
    positive: torch.Tensor  # (2, P) node pairs that are edges
    negative: torch.Tensor | None  # (2, Q) pairs that are not, or None: the task samples them
    num_nodes: int
    known: torch.Tensor  # (K,) sorted u * N + v codes of every edge of the full graph, both directions


def edge_codes(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """u * N + v for each edge: one integer per directed pair, for membership tests."""
    return edge_index[0] * num_nodes + edge_index[1]


def sample_negatives(count: int, num_nodes: int, known: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` pairs (u, v), u != v, that are not edges (rejection sampling; graphs are sparse)."""
    non_edges = num_nodes * (num_nodes - 1) - len(known)
    if count > 0 and non_edges <= 0:  # rejection sampling would never end (pairs may repeat otherwise)
        raise DataError(
            f"the graph has no node pair that is not an edge, so no negative examples for link prediction "
            f"({num_nodes} nodes, {len(known)} directed edges); link prediction needs a sparse graph."
        )
    found: list[torch.Tensor] = [torch.zeros(2, 0, dtype=torch.long, device=known.device)]
    have = 0
    while have < count:
        pairs = torch.randint(0, num_nodes, (2, 2 * (count - have) + 16), generator=generator)
        pairs = pairs.to(known.device)
        keep = (pairs[0] != pairs[1]) & ~torch.isin(edge_codes(pairs, num_nodes), known)
        found.append(pairs[:, keep])
        have += int(keep.sum())
    return torch.cat(found, dim=1)[:, :count]


class LinkSplit:
    def __init__(self, positive: torch.Tensor, negative: torch.Tensor | None, graph_fingerprint: str) -> None:
        self.positive, self.negative = positive, negative
        h = hashlib.sha256(graph_fingerprint.encode())
        h.update(positive.numpy().tobytes())
        if negative is not None:
            h.update(negative.numpy().tobytes())
        self._fingerprint = h.hexdigest()

    def __len__(self) -> int:
        return self.positive.shape[1]

    def fingerprint(self) -> str:
        return self._fingerprint


class LinkData(SplitBundle):
    """Full-batch link prediction on one graph; the engine's data-bundle protocol."""

    def __init__(self, name: str, graph: Graph, config: Any) -> None:
        opts: LinkOptions = config.options
        self.name, self.config = name, config
        n = graph.num_nodes
        ei = graph.edge_index
        undirected = torch.unique(torch.stack([ei.min(0).values, ei.max(0).values]), dim=1)
        undirected = undirected[:, undirected[0] != undirected[1]]  # (2, M), u < v, no self loops
        m = undirected.shape[1]
        n_val, n_test = round(opts.links_val * m), round(opts.links_test * m)
        if m - n_val - n_test < 1:
            raise DataError(f"{name}: no training edges left (links_val + links_test too large for {m} edges).")
        gen = torch.Generator().manual_seed(config.split_seed)
        order = torch.randperm(m, generator=gen)
        test, val, train = (undirected[:, order[:n_test]], undirected[:, order[n_test:n_test + n_val]],
                            undirected[:, order[n_test + n_val:]])
        self.known = torch.sort(edge_codes(torch.cat([undirected, undirected.flip(0)], dim=1), n)).values
        message = torch.cat([train, train.flip(0)], dim=1)  # both directions
        self.graph = Graph(graph.x, message, graph.y)
        fp = self.graph.fingerprint()
        self.splits = {
            "train": LinkSplit(train, None, fp),
            "val": LinkSplit(val, sample_negatives(n_val, n, self.known, gen), fp),
            "test": LinkSplit(test, sample_negatives(n_test, n, self.known, gen), fp),
        }
        self._device_cache: dict[str, tuple[Graph, torch.Tensor]] = {}
        self.meta = {
            "num_classes": opts.embedding_dim, "in_channels": int(graph.x.shape[1]), "num_nodes": n,
            "num_edges": int(message.shape[1]), "level": "link", "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def num_batches(self, split: str = "train") -> int:
        return 1 if len(self.split(split)) else 0

    def _on_device(self, device: torch.device) -> tuple[Graph, torch.Tensor]:
        key = str(device)
        if key not in self._device_cache:
            self._device_cache[key] = (self.graph.to(device), self.known.to(device))
        return self._device_cache[key]

    def _batch(self, split: str, device: torch.device) -> tuple[Graph, LinkBatch]:
        graph, known = self._on_device(device)
        s = self.splits[split]
        negative = None if s.negative is None else s.negative.to(device)
        return graph, LinkBatch(s.positive.to(device), negative, graph.num_nodes, known)

    def train_batches(self, epoch: int, seed: int, device: torch.device, start: int = 0) -> Iterator[tuple[Graph, LinkBatch]]:
        if start == 0:
            yield self._batch("train", device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[Graph, LinkBatch]]:
        if len(self.split(split)):
            yield self._batch(split, device)
