"""``deepatlas bench gnn``: full-batch training epochs of our GCN and GAT against PyTorch Geometric's.

Same data (Planetoid public split, row-normalised features), same architecture and size on both
sides (Kipf & Welling's 2-layer GCN with 16 hidden units and dropout 0.5; Velickovic et al.'s
GAT with 8 heads of 8 and one output head, dropout 0.6), same optimiser (Adam, lr 0.01, L2
5e-4). An epoch is one training step on the whole graph: forward, cross-entropy on the
training nodes, backward, Adam update. PyG's GCN uses ``cached=True`` (its examples' setting,
the normalised adjacency computed once); ours caches its CSR adjacency per graph by itself.
Timed side by side in one process, alternating, after warm-up: the ratio is PyG's time per
epoch over ours (> 1: ours is faster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DeepAtlasError
from ..registry import create_model
from .common import alternate


@dataclass(frozen=True)
class GNNBench:
    datasets: tuple[str, ...] = ("cora", "citeseer")
    models: tuple[str, ...] = ("gcn", "gat")
    calls: int = 20
    rounds: int = 5
    warmup: int = 5


def _pyg_model(name: str, features: int, classes: int) -> nn.Module:
    try:
        from torch_geometric.nn import GATConv, GCNConv
    except ImportError:
        raise DeepAtlasError("bench gnn compares with PyTorch Geometric: pip install torch_geometric.") from None

    class PygGCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = GCNConv(features, 16, cached=True), GCNConv(16, classes, cached=True)

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            x = F.dropout(F.relu(self.conv1(F.dropout(x, 0.5, self.training), edge_index)), 0.5, self.training)
            return self.conv2(x, edge_index)

    class PygGAT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = GATConv(features, 8, heads=8, dropout=0.6)
            self.conv2 = GATConv(64, classes, heads=1, concat=False, dropout=0.6)

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            x = F.elu(self.conv1(F.dropout(x, 0.6, self.training), edge_index))
            return self.conv2(F.dropout(x, 0.6, self.training), edge_index)

    return PygGCN() if name == "gcn" else PygGAT()


def _epoch_fn(model: nn.Module, forward: Callable[[], torch.Tensor], y: torch.Tensor, mask: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    model.train()

    def epoch() -> None:
        loss = F.cross_entropy(forward()[mask], y[mask])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return epoch


def run(bench: GNNBench | None = None, device: torch.device | None = None, root: str | None = None) -> list[dict[str, Any]]:
    """One row per (dataset, model): ms per training epoch of both and the ratio PyG / ours."""
    from ..data.planetoid import load_planetoid

    b = bench or GNNBench()
    device = device or torch.device("cpu")
    rows = []
    for dataset in b.datasets:
        graph = load_planetoid(dataset, root, normalize_features=True).to(device)
        x, edges, y, mask = graph.x, graph.edge_index, graph.y, graph.masks["train"]
        classes = int(y.max()) + 1
        for name in b.models:
            torch.manual_seed(0)
            ours = create_model(name, in_channels=x.shape[1], num_classes=classes).to(device)
            pyg = _pyg_model(name, x.shape[1], classes).to(device)
            timing = alternate(
                {
                    "ours": _epoch_fn(ours, lambda m=ours, x=x, e=edges: m(x, e), y, mask),
                    "pyg": _epoch_fn(pyg, lambda m=pyg, x=x, e=edges: m(x, e), y, mask),
                },
                calls=b.calls, rounds=b.rounds, warmup=b.warmup, device=device,
            )
            t_ours, t_pyg = timing.median("ours"), timing.median("pyg")
            rows.append({
                "dataset": dataset, "model": name, "ours_ms": 1e3 * t_ours, "pyg_ms": 1e3 * t_pyg,
                "ratio": t_pyg / t_ours, "spread": max(timing.spread("ours"), timing.spread("pyg")),
            })
    return rows
