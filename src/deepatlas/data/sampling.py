"""Neighbour sampling for mini-batch training on graphs that do not fit in one batch.

GraphSAGE (Hamilton et al. 2017, Algorithm 2): for a batch of target nodes, sample a fixed
number S_1 of each target's neighbours, then S_2 of each of those, and so on for K layers;
a K-layer model computed on the union of the sampled edges gives the targets' outputs from
a bounded computation graph (the paper's S_1 = 25, S_2 = 10). Here the sample is returned
as an ordinary ``Graph`` (nodes relabelled, targets first) plus a mask of the targets, so
the node-classification task trains on it unchanged. Sampling is without replacement:
a node with at most S neighbours keeps them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import ConfigError
from ..schema import option
from .graph import Graph


@dataclass(frozen=True)
class SamplingOptions:
    """Mini-batches of target nodes with sampled neighbourhoods (training only; evaluation is full-graph)."""

    neighbors: Optional[tuple[int, ...]] = option(
        None, "neighbours sampled per node and hop, e.g. [25, 10] (GraphSAGE); null: full-batch training"
    )

    def validate(self, path: str) -> None:
        if self.neighbors is not None and (not self.neighbors or min(self.neighbors) < 1):
            raise ConfigError(f"{path}.neighbors: give one positive count per layer, e.g. [25, 10].")


class NeighborSampler:
    """Samples the K-hop computation graph of a batch of target nodes (incoming edges: source -> target)."""

    def __init__(self, graph: Graph, sizes: tuple[int, ...]) -> None:
        self.graph, self.sizes = graph, sizes
        order = torch.argsort(graph.edge_index[1], stable=True)  # incoming edges grouped by target
        self.sources = graph.edge_index[0, order]
        self.edge_ids = order
        counts = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes)
        self.ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])

    def _sample_edges(self, nodes: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
        """Positions (into the target-sorted edge list) of up to ``size`` incoming edges per node."""
        start, deg = self.ptr[nodes], self.ptr[nodes + 1] - self.ptr[nodes]
        owner = torch.repeat_interleave(torch.arange(len(nodes)), deg)  # which node each candidate edge serves
        offset = torch.arange(int(deg.sum())) - torch.repeat_interleave(deg.cumsum(0) - deg, deg)
        position = torch.repeat_interleave(start, deg) + offset
        key = owner.double() + torch.rand(len(owner), generator=gen, dtype=torch.float64) * 0.5  # random order per node
        ranked = torch.argsort(key)
        rank = torch.arange(len(owner)) - torch.repeat_interleave(deg.cumsum(0) - deg, deg)
        keep = ranked[rank < size]
        return position[keep]

    def sample(self, targets: torch.Tensor, gen: torch.Generator) -> tuple[Graph, torch.Tensor]:
        """The sampled subgraph (targets are its first nodes) and the mask of the targets."""
        g = self.graph
        nodes, frontier, picked = targets, targets, []
        for size in self.sizes:
            pos = self._sample_edges(frontier, size, gen)
            picked.append(pos)
            new = self.sources[pos]
            known = torch.zeros(g.num_nodes, dtype=torch.bool)
            known[nodes] = True
            frontier = torch.unique(new[~known[new]])
            nodes = torch.cat([nodes, frontier])
        edges = g.edge_index[:, self.edge_ids[torch.unique(torch.cat(picked))]]
        relabel = torch.full((g.num_nodes,), -1, dtype=torch.long)
        relabel[nodes] = torch.arange(len(nodes))
        weight = None if g.edge_weight is None else g.edge_weight[self.edge_ids[torch.unique(torch.cat(picked))]]
        sub = Graph(g.x[nodes], relabel[edges], g.y[nodes] if g.y is not None else None, weight)
        mask = torch.zeros(len(nodes), dtype=torch.bool)
        mask[: len(targets)] = True
        return sub, mask
