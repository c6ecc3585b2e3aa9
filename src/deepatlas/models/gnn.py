"""Graph neural networks: GCN, GraphSAGE, GAT, GIN and Deep Sets.

Models, built from frozen configs and registered as presets: ``gcn`` (Kipf's
2-layer Cora model), ``gat`` (Velickovic's Cora model), ``graphsage``, ``gin``
(graph classification with the readout of every layer, eq. 4.2),
``gcn-graph`` (a GCN with a mean readout, the usual graph-classification
baseline) and ``deepsets`` (Zaheer et al. 2017, Theorem 2: f(X) = rho(sum_x phi(x))).
The layers they are built from (the convolutions with their equations, the
readouts, DropEdge) are in :mod:`deepatlas.nn.gnn`.

Every config derives from :class:`GraphModelConfig` (the data-bound
``in_channels`` and ``num_classes``, and ``hidden``); the configs of GCN,
GraphSAGE and GAT from :class:`GraphNetConfig`, the fields of
:class:`GraphNet`'s layer stack. A subclass redeclares a field only where its
default or meaning differs.

Every model has ``forward(x, edge_index, batch=None, edge_weight=None)``:
x (N, in_channels); batch (N,) the graph of each node in a block-diagonal
batch (None: one graph); returns node logits (N, num_classes), or graph logits
(G, num_classes) when the config's ``readout`` is not ``none``. Only GCN uses
``edge_weight``; the other papers define no edge weights and ignore it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..nn import activation
from ..nn.gnn import (
    DropEdge,
    GATConv,
    GCNConv,
    GINConv,
    Readout,
    SAGEConv,
    SparseFeatures,
    graph_index,
)
from ..nn.message_passing import AdjacencyCache
from ..registry import register_model
from ..schema import option

# ---------------------------------------------------------------------------- configs


IN_DOC = "node-feature dimension (from the data)"
CLASSES_DOC = "output classes (from the data)"
READOUT_DOC = "none: node logits; sum/mean/max/attention: graph logits through this pooling"
DROP_EDGE_DOC = "DropEdge: fraction of edges removed at random in each training forward"
DROPOUT_DOC = "dropout on the input of every layer (and before the graph head)"
PROPAGATION_DOC = "sparse: cached CSR adjacency @ features; scatter: gather + index_add; auto: sparse where supported"
SPARSE_FEATURES_DOC = "first layer: mostly-zero input features (<= 10% nonzero) as a CSR sparse-dense product"

def _default(config: type, name: str, value: Any) -> Any:
    """``config``'s option ``name`` with another default: its doc and bounds stay those of the base."""
    meta = next(f.metadata for f in dataclasses.fields(config) if f.name == name)
    return option(value, meta["doc"], low=meta["low"], high=meta["high"], choices=meta["choices"])


@dataclass(frozen=True)
class GraphModelConfig:
    """The fields of every graph model: the data-bound widths and the hidden width.

    Each subclass also declares ``readout`` (``none`` where node logits are an
    option); ``graph_level`` reads it.
    """

    in_channels: int = option(1433, IN_DOC, low=1)
    num_classes: int = option(7, CLASSES_DOC, low=1)
    hidden: int = option(16, "hidden units per layer", low=1)

    @property
    def graph_level(self) -> bool:
        """Whether the model pools node embeddings into graph logits."""
        return self.readout != "none"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GraphNetConfig(GraphModelConfig):
    """The fields of a :class:`GraphNet` (GCN, GraphSAGE, GAT): its layer stack and optional graph head."""

    num_layers: int = option(2, "message-passing layers", low=1)
    dropout: float = option(0.5, DROPOUT_DOC, low=0.0, high=1.0)
    activation: Literal["relu", "gelu", "silu", "tanh", "elu", "leaky-relu"] = option("relu", "activation after each hidden layer")
    readout: Literal["none", "sum", "mean", "max", "attention"] = option("none", READOUT_DOC)
    drop_edge: float = option(0.0, DROP_EDGE_DOC, low=0.0, high=0.99)


@dataclass(frozen=True)
class GCNConfig(GraphNetConfig):
    propagation: Literal["auto", "sparse", "scatter"] = option("auto", PROPAGATION_DOC)
    sparse_features: bool = option(True, SPARSE_FEATURES_DOC)


@dataclass(frozen=True)
class SAGEConfig(GraphNetConfig):
    hidden: int = _default(GraphNetConfig, "hidden", 256)
    aggr: Literal["mean", "max"] = option("mean", "neighbour aggregator: mean, or max (the pooling aggregator)")
    normalize: bool = option(False, "L2-normalise the hidden embeddings (Algorithm 1, line 7)")
    propagation: Literal["auto", "sparse", "scatter"] = option("auto", PROPAGATION_DOC)


@dataclass(frozen=True)
class GATConfig(GraphNetConfig):
    hidden: int = option(8, "features per attention head in the hidden layers", low=1)
    dropout: float = _default(GraphNetConfig, "dropout", 0.6)
    activation: Literal["relu", "gelu", "silu", "tanh", "elu", "leaky-relu"] = _default(GraphNetConfig, "activation", "elu")
    heads: int = option(8, "attention heads of the hidden layers (concatenated)", low=1)
    out_heads: int = option(1, "attention heads of the output layer (averaged)", low=1)
    attention_dropout: float = option(0.6, "dropout on the normalised attention coefficients", low=0.0, high=1.0)
    sparse_features: bool = option(True, SPARSE_FEATURES_DOC)


@dataclass(frozen=True)
class GINConfig(GraphModelConfig):
    in_channels: int = _default(GraphModelConfig, "in_channels", 7)
    num_classes: int = _default(GraphModelConfig, "num_classes", 2)
    hidden: int = option(64, "hidden units of every GIN layer", low=1)
    num_layers: int = option(5, "GIN layers", low=1)
    mlp_layers: int = option(2, "linear layers in each GIN MLP", low=1)
    train_eps: bool = option(False, "learn eps (GIN-eps) instead of fixing it at 0 (GIN-0)")
    dropout: float = option(0.5, "dropout before the final linear layer", low=0.0, high=1.0)
    readout: Literal["sum", "mean", "max", "attention"] = option("sum", "pooling of every layer's node features (sum is the injective one)")
    drop_edge: float = option(0.0, DROP_EDGE_DOC, low=0.0, high=0.99)
    propagation: Literal["auto", "sparse", "scatter"] = option("auto", PROPAGATION_DOC)


@dataclass(frozen=True)
class DeepSetsConfig(GraphModelConfig):
    in_channels: int = option(1, "element-feature dimension (from the data)", low=1)
    num_classes: int = _default(GraphModelConfig, "num_classes", 10)
    hidden: int = option(64, "width of phi and rho", low=1)
    phi_layers: int = option(2, "linear layers of phi (per element)", low=1)
    rho_layers: int = option(2, "linear layers of rho (per set; the last one outputs logits)", low=1)
    readout: Literal["sum", "mean", "max", "attention"] = option("sum", "pooling over the elements of a set (the theorem's sum)")
    dropout: float = option(0.0, "dropout inside rho", low=0.0, high=1.0)


# ---------------------------------------------------------------------------- models


class GraphNet(nn.Module):
    """DropEdge -> [dropout -> conv -> activation] x L, then node logits or a graph head.

    Node-level (readout ``none``): the last conv outputs the logits and has no
    activation. Graph-level: every conv is hidden, then readout -> dropout -> linear.
    Subclasses build ``self.convs`` and call :meth:`_finish`.
    """

    config: GraphNetConfig
    uses_edge_weight = False

    def _finish(self, c: GraphNetConfig, convs: list[nn.Module], width: int) -> None:
        self.drop_edge = DropEdge(c.drop_edge)
        self.convs = nn.ModuleList(convs)
        self.act = activation(c.activation)
        self.dropout = nn.Dropout(c.dropout)
        self.readout = Readout(c.readout, width) if c.graph_level else None
        self.head = nn.Linear(width, c.num_classes) if c.graph_level else None
        self.sparse_features = SparseFeatures() if getattr(c, "sparse_features", False) else None

    def _first_input(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout on the input features; on their CSR copy when they are mostly zeros."""
        csr = self.sparse_features.get(x) if self.sparse_features is not None else None
        if csr is None:
            return self.dropout(x)
        values = self.dropout(csr.values())
        return torch.sparse_csr_tensor(csr.crow_indices(), csr.col_indices(), values, csr.shape, check_invariants=False)

    def _widths(self, hidden: int) -> list[tuple[int, int]]:
        """(in, out) of each conv: hidden throughout, num_classes at the end of a node-level model."""
        c = self.config
        outs = [hidden] * c.num_layers
        if not c.graph_level:
            outs[-1] = c.num_classes
        return list(zip([c.in_channels, *outs[:-1]], outs, strict=True))

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        edge_index, edge_weight = self.drop_edge(edge_index, edge_weight)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = self._first_input(x) if i == 0 else self.dropout(x)
            x = conv(x, edge_index, edge_weight) if self.uses_edge_weight else conv(x, edge_index)
            if i < last or self.head is not None:
                x = self.act(x)
        if self.head is None:
            return x  # (N, num_classes)
        batch, num_graphs = graph_index(x, batch)
        return self.head(self.dropout(self.readout(x, batch, num_graphs)))  # (G, num_classes)


class GCN(GraphNet):
    """Kipf & Welling (2017): relu(A^ X W0) -> A^ H W1, A^ the renormalised adjacency, dropout 0.5."""

    uses_edge_weight = True

    def __init__(self, config: GCNConfig) -> None:
        super().__init__()
        self.config = c = config
        cache = AdjacencyCache()  # every layer multiplies by the same propagation matrix
        convs = [GCNConv(i, o, propagation=c.propagation, cache=cache) for i, o in self._widths(c.hidden)]
        self._finish(c, convs, c.hidden)


class GraphSAGE(GraphNet):
    """Hamilton et al. (2017), full-batch: K SAGE layers with mean or max-pool aggregation.

    Neighbour sampling (the paper's S_1 = 25, S_2 = 10) belongs to the data
    loader; on a full graph every neighbour is used.
    """

    def __init__(self, config: SAGEConfig) -> None:
        super().__init__()
        self.config = c = config
        widths, cache = self._widths(c.hidden), AdjacencyCache()
        normalize = [c.normalize] * len(widths)
        if not c.graph_level:
            normalize[-1] = False  # the logits are not embeddings
        convs = [
            SAGEConv(i, o, c.aggr, normalize=norm, propagation=c.propagation, cache=cache)
            for (i, o), norm in zip(widths, normalize, strict=True)
        ]
        self._finish(c, convs, c.hidden)


class GAT(GraphNet):
    """Velickovic et al. (2018), the Cora model: two attention layers.

    8 heads x 8 features, concatenated, ELU; then an output layer whose heads
    (1 on Cora, 8 on PubMed) are averaged; dropout 0.6 on every layer's input
    and on the attention coefficients.
    """

    def __init__(self, config: GATConfig) -> None:
        super().__init__()
        self.config = c = config
        width, in_ch, convs = c.heads * c.hidden, c.in_channels, []
        cache = AdjacencyCache()  # every layer attends over the same sorted graph
        for _ in range(c.num_layers - (0 if c.graph_level else 1)):
            convs.append(GATConv(in_ch, c.hidden, c.heads, concat=True, dropout=c.attention_dropout, cache=cache))
            in_ch = width
        if not c.graph_level:
            convs.append(GATConv(in_ch, c.num_classes, c.out_heads, concat=False, dropout=c.attention_dropout,
                                 cache=cache))
        self._finish(c, convs, width)


def _mlp(widths: list[int], norm: bool, dropout: float = 0.0) -> nn.Sequential:
    """Linear layers of the given widths with ReLU (and BatchNorm, dropout) between them."""
    layers: list[nn.Module] = []
    for k, (i, o) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(i, o))
        if k < len(widths) - 2:
            layers += [nn.BatchNorm1d(o)] if norm else []
            layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
    return nn.Sequential(*layers)


class GIN(nn.Module):
    """GIN for graph classification (Xu et al. 2019, section 4.2 and eq. 4.2).

    h^0 = x; h^k = relu(BN(GINConv_k(h^{k-1}))) with a ``mlp_layers``-layer MLP
    (Linear, BN, ReLU, Linear) inside each GINConv; the graph representation
    concatenates the readout of every layer, h_G = ||_{k=0..K} READOUT(h^k),
    and a linear layer gives the logits (equal to the paper's sum of one linear
    prediction per layer). x (N, in_channels) -> (G, num_classes).
    """

    def __init__(self, config: GINConfig) -> None:
        super().__init__()
        self.config = c = config
        self.drop_edge = DropEdge(c.drop_edge)
        widths, cache = [c.in_channels] + [c.hidden] * c.num_layers, AdjacencyCache()
        self.convs = nn.ModuleList(
            GINConv(_mlp([i] + [c.hidden] * c.mlp_layers, norm=True), train_eps=c.train_eps,
                    propagation=c.propagation, cache=cache)
            for i in widths[:-1]
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(c.hidden) for _ in range(c.num_layers))
        self.readouts = nn.ModuleList(Readout(c.readout, w) for w in widths)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(sum(widths), c.num_classes)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        edge_index, _ = self.drop_edge(edge_index)
        batch, num_graphs = graph_index(x, batch)
        pooled = [self.readouts[0](x, batch, num_graphs)]
        for conv, norm, readout in zip(self.convs, self.norms, self.readouts[1:], strict=True):
            x = norm(conv(x, edge_index)).relu()  # (N, hidden)
            pooled.append(readout(x, batch, num_graphs))  # (G, hidden)
        return self.head(self.dropout(torch.cat(pooled, dim=-1)))  # (G, num_classes)


class DeepSets(nn.Module):
    """Deep Sets (Zaheer et al. 2017, Theorem 2): f(X) = rho(sum_{x in X} phi(x)).

    Elements x (N, in_channels) grouped into sets by ``batch`` (N,) (None: one
    set) -> (G, num_classes). The sum makes f invariant to the order of the
    elements; ``edge_index`` is accepted for the shared signature and ignored.
    """

    def __init__(self, config: DeepSetsConfig) -> None:
        super().__init__()
        self.config = c = config
        self.phi = nn.Sequential(_mlp([c.in_channels] + [c.hidden] * c.phi_layers, norm=False), nn.ReLU())
        self.pool = Readout(c.readout, c.hidden)
        self.rho = _mlp([c.hidden] * c.rho_layers + [c.num_classes], norm=False, dropout=c.dropout)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, num_sets = graph_index(x, batch)
        return self.rho(self.pool(self.phi(x), batch, num_sets))  # (G, num_classes)


GNN_CONFIGS = (GCNConfig, SAGEConfig, GATConfig, GINConfig, DeepSetsConfig)

register_model("gcn", GCN, GCNConfig(), family="gnn", doc="GCN (Kipf & Welling 2017): 2 layers, 16 hidden, dropout 0.5")
register_model(
    "gat", GAT, GATConfig(), family="gnn",
    doc="GAT (Velickovic et al. 2018): 8 heads x 8 ELU units, 1 averaged output head, dropout 0.6",
)
register_model(
    "graphsage", GraphSAGE, SAGEConfig(), family="gnn",
    doc="GraphSAGE (Hamilton et al. 2017): 2 layers of 256, mean aggregator (aggr=max: pooling)",
)
register_model(
    "gin", GIN, GINConfig(), family="gnn",
    doc="GIN-0 (Xu et al. 2019): 5 layers, 2-layer MLPs + BatchNorm, 64 hidden, sum readout of every layer",
)
register_model(
    "gcn-graph", GCN, GCNConfig(in_channels=7, num_classes=2, hidden=64, num_layers=3, readout="mean"),
    family="gnn", doc="graph classification baseline: 3 GCN layers of 64, mean readout, linear head",
)
register_model(
    "deepsets", DeepSets, DeepSetsConfig(), family="gnn",
    doc="Deep Sets (Zaheer et al. 2017): phi MLP per element, sum, rho MLP",
)
