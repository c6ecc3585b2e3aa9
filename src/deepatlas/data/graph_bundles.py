"""Node- and graph-level graph bundles: full-batch (or neighbour-sampled) node classification, graph classification.

Both follow the data-bundle protocol of :mod:`.bundle`. :class:`NodeGraphData`
serves one graph: a batch is ``(graph, mask)``, the whole graph on the device
(cached) and the nodes whose labels count; with ``data.neighbors`` a training
batch is a sampled subgraph and the mask of its target nodes
(:mod:`.sampling`). :class:`GraphLevelData` serves a list of graphs: a batch is
``(block-diagonal graph with a batch vector, labels (G,))``. Link prediction
has its own bundle (:mod:`.links`). The Planetoid graphs and your CSV graphs
(:mod:`.planetoid`, :mod:`.graph_csv`) are node-level; the graph atlas
(:mod:`.graph_atlas`) is graph-level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..errors import DataError
from ..io import derive_seed
from .bundle import ShuffledBatches, SplitBundle
from .graph import Graph, batch_graphs, index_to_mask
from .sampling import NeighborSampler


class NodeSplit:
    """The nodes of one split: the whole graph and a boolean mask."""

    def __init__(self, graph: Graph, mask: torch.Tensor, graph_fingerprint: Callable[[], str]) -> None:
        self.graph, self.mask = graph, mask
        self._graph_fingerprint = graph_fingerprint
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return int(self.mask.sum())

    def fingerprint(self) -> str:
        """sha256 of the graph's content and of this split's mask."""
        if self._fingerprint is None:
            h = hashlib.sha256(self._graph_fingerprint().encode())
            h.update(self.mask.numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class NodeGraphData(SplitBundle):
    """Full-batch node classification: each batch is ``(graph, mask)`` with the whole graph on the device."""

    def __init__(self, name: str, graph: Graph, class_names: list[str], config: Any) -> None:
        self.name, self.config, self.graph, self.class_names = name, config, graph, class_names
        masks = dict(graph.masks)
        if config.limit is not None:  # the first `limit` training nodes
            masks["train"] = index_to_mask(masks["train"].nonzero().flatten()[: config.limit], graph.num_nodes)
        self.splits = {k: NodeSplit(graph, masks[k], self._graph_fingerprint) for k in ("train", "val", "test")}
        if len(self.splits["train"]) == 0:
            raise DataError(f"{name}: the training split is empty.")
        self._fingerprint: str | None = None
        self._device_cache: dict[str, Graph] = {}
        sizes = getattr(config.options, "neighbors", None)
        self.sampler = NeighborSampler(graph, tuple(sizes)) if sizes else None
        self.meta = {
            "num_classes": len(class_names),
            "in_channels": int(graph.x.shape[1]),
            "num_nodes": graph.num_nodes,
            "num_edges": graph.num_edges,
            "level": "node",
            "class_names": class_names,
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def _graph_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.graph.fingerprint()
        return self._fingerprint

    def num_batches(self, split: str = "train") -> int:
        n = len(self.split(split))
        if split == "train" and self.sampler is not None:
            return -(-n // self.config.batch_size)
        return 1 if n else 0

    def _on_device(self, device: torch.device) -> Graph:
        key = str(device)
        if key not in self._device_cache:
            self._device_cache[key] = self.graph.to(device)
        return self._device_cache[key]

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[Graph, torch.Tensor]]:
        """One batch per epoch: ``(graph, train_mask)`` (nothing when resuming after it); with
        ``neighbors``, mini-batches ``(sampled subgraph, mask of its target nodes)`` of ``batch_size`` targets."""
        if self.sampler is None:
            if start == 0:
                yield self._on_device(device), self.splits["train"].mask.to(device)
            return
        nodes = self.splits["train"].mask.nonzero().flatten()
        order = nodes[torch.randperm(len(nodes), generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch)))]
        for i, targets in enumerate(order.split(self.config.batch_size)):
            if i < start:
                continue
            sub, mask = self.sampler.sample(targets, torch.Generator().manual_seed(derive_seed(seed, "sample", epoch, i)))
            yield sub.to(device), mask.to(device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[Graph, torch.Tensor]]:
        data = self.split(split)
        if len(data):
            yield self._on_device(device), data.mask.to(device)


class GraphListSplit:
    """Graphs of one split with their labels (G,)."""

    def __init__(self, graphs: list[Graph]) -> None:
        self.graphs = graphs
        self.labels = torch.stack([g.y for g in graphs]) if graphs else torch.zeros(0, dtype=torch.long)  # type: ignore[misc]
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.graphs)

    def fingerprint(self) -> str:
        """sha256 over the graphs' fingerprints, in order."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for g in self.graphs:
                h.update(g.fingerprint().encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class GraphLevelData(ShuffledBatches):
    """Graph classification: batches ``(batched_graph, y)`` of ``data.batch_size`` graphs.

    Training batches follow a permutation seeded by ``(seed, epoch)`` and drop
    the last incomplete batch; ``start`` skips the batches a resumed run has
    already seen.
    """

    def __init__(
        self, name: str, splits: dict[str, list[Graph]], class_names: list[str], config: Any, extra: dict[str, Any]
    ) -> None:
        self.name, self.config, self.class_names = name, config, class_names
        self.splits = {k: GraphListSplit(v) for k, v in splits.items()}
        if len(self.splits["train"]) == 0:
            raise DataError(f"{name}: the training split is empty (check data.val_fraction and data.limit).")
        first = self.splits["train"].graphs[0]
        self.meta = {
            "num_classes": len(class_names),
            "in_channels": int(first.x.shape[1]),
            "level": "graph",
            "class_names": class_names,
            "num_graphs": sum(len(s) for s in self.splits.values()),
            **extra,
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def _batches(self, data: GraphListSplit, index: list[torch.Tensor], device: torch.device) -> Iterator[Any]:
        for idx in index:
            batch = batch_graphs([data.graphs[i] for i in idx.tolist()]).to(device)
            yield batch, batch.y

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[Graph, torch.Tensor]]:
        yield from self._batches(self.splits["train"], self.epoch_index(epoch, seed, start), device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[Graph, torch.Tensor]]:
        data = self.split(split)
        yield from self._batches(data, list(torch.arange(len(data)).split(self.config.eval_batch_size)), device)


__all__ = ["GraphLevelData", "GraphListSplit", "NodeGraphData", "NodeSplit"]
