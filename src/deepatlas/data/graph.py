"""The graph structure: a COO :class:`Graph`, its CSR and sparse adjacency, a content fingerprint, batching.

A :class:`Graph` holds node features ``x`` (N, F), a COO ``edge_index`` (2, E)
in PyG's convention (row 0 the source, row 1 the target: a message flows
``edge_index[0] -> edge_index[1]``), optional ``edge_weight`` (E,), labels ``y``
and boolean node ``masks``. Its adjacency is ``A[target, source] = weight`` so
that ``A @ X`` sums each node's incoming messages (Kipf & Welling, 2017, eq. 2
before normalisation). :func:`batch_graphs` joins graphs into one
block-diagonal graph with a ``batch`` vector (N,) and node offsets ``ptr``
(G + 1,), the input of graph classification.

This module imports no other data module, so every graph source and bundle
imports it at module level: the readers (:mod:`.planetoid`, :mod:`.graph_csv`,
:mod:`.graph_atlas`), the node- and graph-level bundles
(:mod:`.graph_bundles`), link prediction (:mod:`.links`) and neighbour
sampling (:mod:`.sampling`).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch


def index_to_mask(index: torch.Tensor, size: int) -> torch.Tensor:
    """A (size,) boolean mask, True at ``index``."""
    mask = torch.zeros(size, dtype=torch.bool)
    mask[index] = True
    return mask


def _unique_edges(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Positions of the first occurrence of each (source, target) pair, in input order."""
    key = edge_index[0] * max(num_nodes, 1) + edge_index[1]
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1 if len(inverse) else 0,), len(key), device=key.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(key), device=key.device), reduce="amin")
    return first.sort().values


@dataclass
class Graph:
    """One graph, or a batch of graphs made by :func:`batch_graphs`.

    ``y`` holds node labels (N,) or, for graph classification, one 0-dim graph
    label (a batch stacks them to (G,)). ``batch`` (N,) gives each node's graph
    and ``ptr`` (G + 1,) the node offsets of each graph in a batch.
    """

    x: torch.Tensor  # (N, F) float
    edge_index: torch.Tensor  # (2, E) long: row 0 source, row 1 target
    y: Optional[torch.Tensor] = None
    edge_weight: Optional[torch.Tensor] = None  # (E,)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) bool
    batch: Optional[torch.Tensor] = None  # (N,) long
    ptr: Optional[torch.Tensor] = None  # (G + 1,) long

    def __post_init__(self) -> None:
        if self.x.dim() != 2:
            raise ValueError(f"Graph.x must be (N, F), got shape {tuple(self.x.shape)}")
        if self.edge_index.dim() != 2 or self.edge_index.shape[0] != 2:
            raise ValueError(f"Graph.edge_index must be (2, E), got shape {tuple(self.edge_index.shape)}")
        if self.edge_weight is not None and self.edge_weight.shape != (self.edge_index.shape[1],):
            raise ValueError("Graph.edge_weight must have one value per edge")

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        """Entries of ``edge_index``: an undirected edge counts once in each direction."""
        return int(self.edge_index.shape[1])

    @property
    def num_graphs(self) -> int:
        return 1 if self.ptr is None else len(self.ptr) - 1

    def to(self, device: torch.device | str) -> Graph:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Graph(
            self.x.to(device, non_blocking=True), self.edge_index.to(device, non_blocking=True), move(self.y),
            move(self.edge_weight), {k: v.to(device) for k, v in self.masks.items()}, move(self.batch), move(self.ptr),
        )

    def to_csr(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(crow_indices (N+1,), col_indices (E,), values (E,))`` of ``A[target, source]``.

        Entries are sorted by target, then source; parallel edges stay separate
        entries (a product ``A @ X`` sums them).
        """
        source, target = self.edge_index
        n = self.num_nodes
        order = torch.argsort(target * max(n, 1) + source, stable=True)
        counts = torch.bincount(target, minlength=n)
        crow = torch.zeros(n + 1, dtype=torch.long, device=counts.device)
        crow[1:] = torch.cumsum(counts, 0)
        values = self.edge_weight if self.edge_weight is not None else torch.ones(
            self.num_edges, dtype=self.x.dtype if self.x.is_floating_point() else torch.float32, device=source.device
        )
        return crow, source[order], values[order]

    def to_sparse(self) -> torch.Tensor:
        """The (N, N) adjacency ``A[target, source]`` as a ``torch.sparse_csr_tensor``."""
        crow, col, values = self.to_csr()
        n = self.num_nodes
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(crow, col, values, size=(n, n), check_invariants=False)  # valid as built

    def to_undirected(self) -> Graph:
        """Every edge in both directions, parallel edges merged.

        An edge present in both directions keeps each direction's weight; a
        one-way edge gives its reverse the same weight; of parallel edges the
        first wins. Self loops are kept once.
        """
        both = torch.cat([self.edge_index, self.edge_index.flip(0)], dim=1)
        keep = _unique_edges(both, self.num_nodes)
        weight = None if self.edge_weight is None else torch.cat([self.edge_weight, self.edge_weight])[keep]
        return Graph(self.x, both[:, keep], self.y, weight, dict(self.masks), self.batch, self.ptr)

    def fingerprint(self) -> str:
        """sha256 of the content: features, edges, weights, labels and masks, in order."""
        h = hashlib.sha256()
        parts = [("x", self.x), ("edge_index", self.edge_index), ("edge_weight", self.edge_weight), ("y", self.y)]
        parts += [(f"mask:{k}", self.masks[k]) for k in sorted(self.masks)]
        for name, t in parts:
            if t is None:
                continue
            t = t.detach().cpu().contiguous()
            h.update(repr((name, str(t.dtype), tuple(t.shape))).encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()


def batch_graphs(graphs: Sequence[Graph]) -> Graph:
    """One block-diagonal graph of ``graphs``, with ``batch`` (N,) and ``ptr`` (G + 1,).

    Edge indices are offset by the nodes of the graphs before. Graph labels
    (0-dim ``y``) are stacked to (G,); node labels are concatenated.
    """
    if not graphs:
        raise ValueError("batch_graphs needs at least one graph")
    device = graphs[0].x.device
    sizes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long, device=device)
    ptr = torch.zeros(len(graphs) + 1, dtype=torch.long, device=device)
    ptr[1:] = torch.cumsum(sizes, 0)
    edge_index = torch.cat([g.edge_index + ptr[i] for i, g in enumerate(graphs)], dim=1)
    weights = [g.edge_weight for g in graphs]
    if any(w is None for w in weights) and not all(w is None for w in weights):
        raise ValueError("batch_graphs: either every graph has edge_weight or none has")
    edge_weight = None if weights[0] is None else torch.cat(weights)  # type: ignore[arg-type]
    labels = [g.y for g in graphs]
    if all(y is None for y in labels):
        y = None
    elif any(y is None for y in labels):
        raise ValueError("batch_graphs: either every graph has y or none has")
    elif all(y.dim() == 0 for y in labels):  # type: ignore[union-attr]
        y = torch.stack(labels)  # type: ignore[arg-type]
    else:
        y = torch.cat(labels)  # type: ignore[arg-type]
    names = set(graphs[0].masks)
    masks = {k: torch.cat([g.masks[k] for g in graphs]) for k in names if all(k in g.masks for g in graphs)}
    batch = torch.repeat_interleave(torch.arange(len(graphs), device=device), sizes)
    return Graph(torch.cat([g.x for g in graphs]), edge_index, y, edge_weight, masks, batch, ptr)


__all__ = ["Graph", "batch_graphs", "index_to_mask"]
