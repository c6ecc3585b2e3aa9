"""Learning on graphs: transductive node classification and graph classification.

Node classification (Kipf & Welling 2016, Section 3): one graph; the loss is the cross-entropy
over the labelled training nodes only, L = -sum_{l in Y_L} sum_f Y_lf ln Z_lf, while the model
sees every node's features and every edge. A batch is ``(graph, mask)``: the whole graph and
the nodes whose labels count (train, val or test). Graph classification (Xu et al. 2018): a
batch is ``(block-diagonal graph with a batch vector, labels (G,))`` and the model reads each
graph out to one vector. Both report the classification metrics (accuracy, macro-F1, NLL, ECE,
confusion matrix) of the image task, which they extend by how a batch becomes logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import TASKS
from .classification import Classification, ClassificationConfig


class NodeClassification(Classification):
    """Cross-entropy on the masked nodes of one graph; ``model(x, edge_index, edge_weight=...) -> (N, K)``."""

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        graph, mask = batch
        logits = model(graph.x, graph.edge_index, edge_weight=graph.edge_weight)  # (N, K)
        return logits[mask], graph.y[mask]

    def batch_size(self, batch: Any) -> int:
        return int(batch[1].sum())


class GraphClassification(Classification):
    """Cross-entropy per graph; ``model(x, edge_index, batch=...) -> (G, K)``."""

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        graph, y = batch
        return model(graph.x, graph.edge_index, batch=graph.batch, edge_weight=graph.edge_weight), y  # (G, K)

    def batch_size(self, batch: Any) -> int:
        return len(batch[1])


TASKS.register(
    "node-classification", NodeClassification, ClassificationConfig(), family="graph",
    doc="transductive node classification: loss on the labelled nodes of one graph (GCN, GAT, SAGE)",
)
TASKS.register(
    "graph-classification", GraphClassification, ClassificationConfig(), family="graph",
    doc="one label per graph from a readout of its nodes (GIN, graph-level GCN, DeepSets)",
)
