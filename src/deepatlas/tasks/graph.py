"""Learning on graphs: transductive node classification and graph classification.

Node classification (Kipf & Welling 2016, Section 3): one graph; the loss is the cross-entropy
over the labelled training nodes only, L = -sum_{l in Y_L} sum_f Y_lf ln Z_lf, while the model
sees every node's features and every edge. A batch is ``(graph, mask)``: the whole graph and
the nodes whose labels count (train, val or test). Graph classification (Xu et al. 2018): a
batch is ``(block-diagonal graph with a batch vector, labels (G,))`` and the model reads each
graph out to one vector. Both report the classification metrics (accuracy, macro-F1, NLL, ECE,
confusion matrix) of the image task, which they extend by how a batch becomes logits.

Link prediction (Kipf & Welling's graph auto-encoder, 2016): the model embeds nodes from the
training edges, a pair scores sigma(z_u . z_v), and the loss is the binary cross-entropy of
held-in edges against as many freshly sampled non-edges per step; validation and test report
ROC-AUC and average precision on held-out edges against fixed non-edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import TASKS
from .base import ExportInputs, StepOutput, Task
from .classification import Classification, ClassificationConfig


def _check_level(meta: Mapping[str, Any], level: str, task: str, links: str) -> None:
    """One graph is served as labelled nodes or as held-out edges (``data.links``): the task needs the right one."""
    served = {"node": "labelled nodes", "link": "held-out edges"}
    have = meta.get("level")
    if have is not None and have != level:
        raise ConfigError(
            f"data.links: task {task} needs {served[level]}, but the data serves {served.get(have, have)}; "
            f"set data.links={links}."
        )


class NodeClassification(Classification):
    """Cross-entropy on the masked nodes of one graph; ``model(x, edge_index, edge_weight=...) -> (N, K)``."""

    data_kind = "graph"
    low_precision_ok = False  # sparse adjacency products have no bf16 kernel on the CPU (Task.low_precision_ok)

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        _check_level(meta, "node", "node-classification", "false")
        super().__init__(config, meta)

    def logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        return model(inputs.x, inputs.edge_index, edge_weight=inputs.edge_weight)  # (N, K)

    def export_inputs(self, batch: Any) -> ExportInputs:
        """``model(x, edge_index)``: the numbers of nodes and edges are dynamic."""
        graph = batch[0]
        if graph.x.layout != torch.strided:
            raise self.cannot("export (its node features are a sparse tensor)")
        if graph.edge_weight is not None:
            raise self.cannot("export (its graph has edge weights)")
        return ExportInputs((graph.x, graph.edge_index), ("x", "edge_index"), ({0: "nodes"}, {1: "edges"}))

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        graph, mask = batch
        return self.logits(model, graph)[mask], graph.y[mask]

    def batch_size(self, batch: Any) -> int:
        return int(batch[1].sum())

    @torch.no_grad()
    def figures(self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Any = None) -> list[Path]:
        """The classifier's figures, and the split's nodes in 2-D: the first two principal components of the
        representation the last layer reads (its input), coloured by class (``embedding-<split>.png``)."""
        out = super().figures(model, batch, folder, split, evaluation)
        convs = getattr(model, "convs", None)
        if batch is None or not convs:
            return out
        graph, mask = batch
        kept: dict[str, torch.Tensor] = {}
        def keep(_module: nn.Module, args: tuple[Any, ...]) -> None:  # a pre-hook that returns nothing leaves the inputs alone
            kept.setdefault("h", args[0])

        hook = convs[-1].register_forward_pre_hook(keep)
        was_training = model.training
        model.eval()
        try:
            self.logits(model, graph)
        finally:
            hook.remove()
            model.train(was_training)
        h = kept.get("h")
        if h is None or h.layout != torch.strided:
            return out
        from ..report.plots import plot_embedding

        names = self.meta.get("class_names") or [str(i) for i in range(int(graph.y.max()) + 1)]
        path = folder / f"embedding-{split}.png"
        return [*out, plot_embedding(h[mask].float().cpu().numpy(), graph.y[mask].cpu().numpy(), names, path,
                                     f"{folder.name}: {split} nodes, the last layer's input (PCA)")]


class GraphClassification(Classification):
    """Cross-entropy per graph; ``model(x, edge_index, batch=...) -> (G, K)``."""

    data_kind = "graphs"  # many small graphs (graph-atlas), not one graph whose nodes are the examples
    low_precision_ok = False  # sparse adjacency products have no bf16 kernel on the CPU (Task.low_precision_ok)

    def logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        return model(inputs.x, inputs.edge_index, batch=inputs.batch, edge_weight=inputs.edge_weight)  # (G, K)

    def export_inputs(self, batch: Any) -> ExportInputs:
        """``model(x, edge_index, batch)``: the numbers of nodes and edges are dynamic (the number of graphs is
        fixed by the export, since the readout sizes its output from ``batch.max() + 1``)."""
        graph = batch[0]
        if graph.edge_weight is not None:
            raise self.cannot("export (its graphs have edge weights)")
        return ExportInputs((graph.x, graph.edge_index, graph.batch), ("x", "edge_index", "batch"),
                            ({0: "nodes"}, {1: "edges"}, {0: "nodes"}))

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        graph, y = batch
        return self.logits(model, graph), y

    def batch_size(self, batch: Any) -> int:
        return len(batch[1])


@dataclass(frozen=True)
class LinkPredictionConfig:
    """No options yet: the edge split lives in the data (data.links, links_val, links_test)."""


class LinkPrediction(Task):
    """Dot-product decoder on node embeddings; ``model(x, edge_index) -> (N, D)``; batches ``(graph, LinkBatch)``."""

    monitor = ("auc", "max")
    low_precision_ok = False  # sparse products (no bf16 CPU kernel) and a float32 likelihood (Task.low_precision_ok)
    directions: ClassVar[Mapping[str, str]] = {"auc": "max", "ap": "max", "loss": "min"}
    capabilities = frozenset({"predict"})
    predicts = "link-scores"
    data_kind = "graph"

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        _check_level(meta, "link", "link-prediction", "true")
        super().__init__(config, meta)

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``inputs`` = (graph, pairs (2, P)): the probability sigma(z_u . z_v) that each pair is an edge,
        with node embeddings z from the graph's edges (give the edges the model may see)."""
        graph, pairs = inputs
        logits = self._scores(self._embed(model, graph), pairs.long()).double()
        return {"logits": logits, "probabilities": torch.sigmoid(logits)}

    @staticmethod
    def _scores(z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return (z[pairs[0]] * z[pairs[1]]).sum(-1)  # (P,) logits of sigma(z_u . z_v)

    def _embed(self, model: nn.Module, graph: Any) -> torch.Tensor:
        return model(graph.x, graph.edge_index, edge_weight=graph.edge_weight)  # (N, D)

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        from ..data.links import sample_negatives

        graph, links = batch
        z = self._embed(model, graph)
        negative = sample_negatives(links.positive.shape[1], links.num_nodes, links.known)  # the global RNG: checkpointed
        pos, neg = self._scores(z, links.positive), self._scores(z, negative)
        loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        accuracy = ((pos > 0).float().sum() + (neg <= 0).float().sum()) / (len(pos) + len(neg))
        return StepOutput(loss, {"loss": loss.detach(), "accuracy": accuracy.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        from sklearn.metrics import average_precision_score, roc_auc_score

        graph, links = batch
        z = self._embed(model, graph)
        pos, neg = self._scores(z, links.positive), self._scores(z, links.negative)
        scores = torch.cat([pos, neg]).float().cpu().numpy()
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        loss = F.binary_cross_entropy_with_logits(torch.cat([pos, neg]), torch.as_tensor(labels, dtype=pos.dtype, device=pos.device))
        # the split is one full-graph batch, so per-batch AUC and AP are the split's (batches counts them)
        return {
            "batches": torch.tensor(1.0), "auc": torch.tensor(roc_auc_score(labels, scores), dtype=torch.float64),
            "ap": torch.tensor(average_precision_score(labels, scores), dtype=torch.float64), "loss": loss.detach().double().cpu(),
        }

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        n = float(totals["batches"])
        return {k: float(totals[k]) / n for k in ("auc", "ap", "loss")}

    def batch_size(self, batch: Any) -> int:
        return int(batch[1].positive.shape[1])


TASKS.register(
    "link-prediction", LinkPrediction, LinkPredictionConfig(), family="graph",
    doc="link prediction: dot-product decoder, sampled negatives, ROC-AUC and AP on held-out edges (data.links=true)",
)
TASKS.register(
    "node-classification", NodeClassification, ClassificationConfig(), family="graph",
    doc="transductive node classification: loss on the labelled nodes of one graph (GCN, GAT, SAGE)",
)
TASKS.register(
    "graph-classification", GraphClassification, ClassificationConfig(), family="graph",
    doc="one label per graph from a readout of its nodes (GIN, graph-level GCN, DeepSets)",
)
