"""Graph neural network layers: GCN, GraphSAGE, GAT and GIN convolutions, graph readouts, DropEdge.

Layers (all on :class:`~deepatlas.nn.message_passing.MessagePassing`; x (N, F_in),
edge_index (2, E) with messages flowing edge_index[0] -> edge_index[1]):

- GCN (Kipf & Welling 2017, eq. 2): H' = D~^{-1/2} A~ D~^{-1/2} H W + b, A~ = A + I.
- GraphSAGE (Hamilton, Ying & Leskovec 2017, Algorithm 1 and eq. 3):
  h_i' = W_l AGG_{j in N(i)} h_j + W_r h_i, AGG = mean, or the pooling aggregator
  max_j relu(W_pool h_j + b); W [h_i || AGG] split into W_r and W_l.
- GAT (Velickovic et al. 2018, eqs. 3-6): alpha_ij = softmax_{j in N(i) + i}
  LeakyReLU_0.2(a_dst^T W h_i + a_src^T W h_j), h_i' = ||_k sum_j alpha^k_ij W^k h_j
  (concatenated heads) or the mean over heads (output layer).
- GIN (Xu, Hu, Leskovec & Jegelka 2019, eq. 4.1): h_i' = MLP((1 + eps) h_i + sum_j h_j).

Graph-level readouts (node features (N, F) and the graph of each node (N,) ->
(G, F)) are sum, mean, max or gated attention (Ilse, Tomczak & Welling 2018,
eq. 9). DropEdge (Rong et al. 2020) removes a random fraction of the edges in
each training forward. :class:`SparseFeatures` keeps a CSR copy of mostly-zero
input features for a first layer's sparse-dense product. The models built from
these layers are in :mod:`deepatlas.models.gnn`.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .edge_attention import csr_graph, graph_attention
from .message_passing import (
    AdjacencyCache,
    MessagePassing,
    add_self_loops,
    gcn_norm,
    global_pool,
    mean_norm,
    segment_softmax,
    sparse_adjacency,
    sparse_supported,
    use_sparse,
)

# ---------------------------------------------------------------------------- convolutions


def project(lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``lin(x)`` for dense features, ``x @ W^T (+ b)`` as a sparse-dense product for CSR features."""
    if x.layout != torch.sparse_csr:
        return lin(x)
    out = torch.sparse.mm(x, lin.weight.t())  # (N, out): only the nonzero features cost anything
    return out if lin.bias is None else out + lin.bias


class SparseFeatures:
    """The CSR copy of a mostly-zero feature matrix, built once per feature tensor.

    Bag-of-words node features (Cora: 1.3% nonzero, 1,433 columns) make the first layer's
    dense ``X W`` the most expensive step of a GCN or GAT epoch; as a sparse-dense product
    it costs the nonzeros only. Dropout on the features acts on the stored values: dropping
    a zero changes nothing, so this equals dense dropout. Keyed like :class:`AdjacencyCache`:
    the tensor itself and its version counter.
    """

    def __init__(self, max_density: float = 0.1) -> None:
        self.max_density = max_density
        self._key: tuple[torch.Tensor, int] | None = None
        self._csr: torch.Tensor | None = None

    def get(self, x: torch.Tensor) -> torch.Tensor | None:
        """The CSR features, or None when ``x`` is not sparse enough (or cannot be)."""
        if self._key is not None and self._key[0] is x and self._key[1] == x._version:
            return self._csr
        csr = None
        eligible = x.dim() == 2 and not x.requires_grad and sparse_supported(x) and x.numel() > 0
        if eligible and float((x != 0).float().mean()) <= self.max_density:
            with warnings.catch_warnings():  # torch calls its CSR support beta; the ops used here are tested
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                csr = x.to_sparse_csr()
        self._key, self._csr = (x, x._version), csr
        return csr


class GCNConv(MessagePassing):
    """Graph convolution (Kipf & Welling 2017, eq. 2): H' = D~^{-1/2} A~ D~^{-1/2} X W + b.

    x (N, in_channels), edge_index (2, E), edge_weight (E,) or None -> (N, out_channels).
    ``propagation``: ``sparse`` multiplies by a cached CSR propagation matrix,
    ``scatter`` gathers and sums messages, ``auto`` takes sparse where supported.
    ``adj`` lets a caller pass the (N, N) CSR propagation matrix it built itself
    (:meth:`adjacency`); ``cache`` may be shared by layers that build the same one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = True,
        add_self_loops: bool = True,
        propagation: str = "auto",
        cache: AdjacencyCache | None = None,
    ) -> None:
        super().__init__("sum")
        self.add_loops = add_self_loops
        self.propagation = propagation
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self._cache = AdjacencyCache() if cache is None else cache
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.lin.weight)  # Glorot & Bengio, as in Kipf's code
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self._cache.clear()

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        adj: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = project(self.lin, x)  # transform first: out_channels is usually far narrower than in_channels
        n = x.shape[0]
        if adj is not None:
            out = self.propagate_sparse(adj, x)
        elif use_sparse(self.propagation, x, edge_weight):
            adj = self._cache.get(
                edge_index, edge_weight, n, x.dtype, lambda: self.adjacency(edge_index, n, edge_weight, x.dtype)
            )
            out = self.propagate_sparse(adj, x)
        else:
            edge_index, norm = gcn_norm(edge_index, n, edge_weight, self.add_loops, x.dtype)
            out = self.propagate(edge_index, x, weight=norm)
        return out if self.bias is None else out + self.bias

    def adjacency(
        self,
        edge_index: torch.Tensor,
        num_nodes: int,
        edge_weight: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The (N, N) CSR propagation matrix D~^{-1/2} A~ D~^{-1/2}, to pass as ``adj``."""
        edge_index, norm = gcn_norm(edge_index, num_nodes, edge_weight, self.add_loops, dtype)
        return sparse_adjacency(edge_index, num_nodes, norm)

    def message(self, x_j: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight.unsqueeze(-1) * x_j  # (E, out_channels)


class SAGEConv(MessagePassing):
    """GraphSAGE (Hamilton et al. 2017): h_i' = W_l AGG_{j in N(i)} h_j + W_r h_i (+ L2 norm).

    ``aggr="mean"``: the mean aggregator. ``aggr="max"``: the pooling aggregator
    (eq. 3), max_j relu(W_pool h_j + b), with W_pool a learned (in, in) layer.
    x (N, in_channels), edge_index (2, E) -> (N, out_channels). A node without
    neighbours aggregates to 0. ``normalize`` divides each output by its L2 norm
    (Algorithm 1, line 7). ``propagation`` and ``cache`` as in :class:`GCNConv` (mean only).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        aggr: Literal["mean", "max"] = "mean",
        normalize: bool = False,
        bias: bool = True,
        propagation: str = "auto",
        cache: AdjacencyCache | None = None,
    ) -> None:
        if aggr not in ("mean", "max"):
            raise ValueError(f"SAGEConv aggregates with mean or max, not {aggr!r}")
        super().__init__(aggr)
        self.normalize = normalize
        self.propagation = propagation
        self.lin = nn.Linear(in_channels, in_channels) if aggr == "max" else None  # W_pool
        self.lin_l = nn.Linear(in_channels, out_channels, bias=bias)  # neighbours
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)  # the node itself
        self._cache = AdjacencyCache() if cache is None else cache
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin, self.lin_l, self.lin_r):
            if lin is not None:
                lin.reset_parameters()
        self._cache.clear()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if self.lin is not None:  # the pooling aggregator, eq. 3
            out = self.lin_l(self.propagate(edge_index, self.lin(x).relu()))
        elif self.lin_l.out_features < self.lin_l.in_features:
            # A mean commutes with W_l: aggregate x W_l^T, the narrower of the two.
            out = self._mean(F.linear(x, self.lin_l.weight), edge_index)
            out = out if self.lin_l.bias is None else out + self.lin_l.bias
        else:
            out = self.lin_l(self._mean(x, edge_index))
        out = out + self.lin_r(x)
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out

    def _mean(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if not use_sparse(self.propagation, x):
            return self.propagate(edge_index, x)
        adj = self._cache.get(
            edge_index, None, n, x.dtype, lambda: sparse_adjacency(edge_index, n, mean_norm(edge_index, n, x.dtype))
        )
        return self.propagate_sparse(adj, x)


class GATConv(MessagePassing):
    """Graph attention (Velickovic et al. 2018, eqs. 3-6), ``heads`` heads of ``out_channels``.

    e_ij = LeakyReLU(a_dst^T W h_i + a_src^T W h_j) over the edges j -> i and a
    self-loop per node; alpha = softmax over each target's edges, then dropout
    (``dropout``, training only); h_i' = sum_j alpha_ij W h_j per head; heads
    are concatenated (N, heads * out_channels) or averaged (N, out_channels).
    ``propagation``: ``sparse`` runs the fused edge softmax and the per-head CSR aggregation of
    :mod:`deepatlas.nn.edge_attention` over a cached sorted copy of the graph, ``scatter``
    gathers per-edge messages and sums them with ``index_add``; ``auto`` takes sparse for
    float32/float64 on the CPU (not yet measured on CUDA) unless traced for an export or
    torch.compile. ``cache`` may be shared by layers that see the same graph.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        bias: bool = True,
        propagation: str = "auto",
        cache: AdjacencyCache | None = None,
    ) -> None:
        super().__init__("sum")
        self.heads, self.out_channels, self.concat = heads, out_channels, concat
        self.negative_slope, self.dropout, self.add_loops = negative_slope, dropout, add_self_loops
        self.propagation = propagation
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.empty(heads * out_channels if concat else out_channels)) if bias else None
        self._cache = AdjacencyCache() if cache is None else cache
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.lin.weight, self.att_src, self.att_dst):
            nn.init.xavier_uniform_(p)  # Glorot, as in the paper's code
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self._cache.clear()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = project(self.lin, x).view(n, self.heads, self.out_channels)  # (N, H, C)
        # auto takes the fused path on the CPU, where it is measured (docs/BENCHMARKS.md), and not
        # when traced for an export (torch.export, ONNX, TorchScript) or torch.compile: those
        # tracers know the plain ops of the scatter path, not the custom Function over CSR tensors.
        tracing = torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
        auto_ok = h.device.type == "cpu" and not tracing
        if use_sparse(self.propagation, h) and (self.propagation == "sparse" or auto_ok):
            out = self._attend_csr(h, edge_index)
        else:
            out = self._attend_scatter(h, edge_index)
        return out if self.bias is None else out + self.bias

    def _attend_csr(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        graph = self._cache.get(edge_index, None, n, h.dtype, lambda: csr_graph(edge_index, n, self.add_loops))
        h = h.transpose(0, 1).contiguous()  # (H, N, C): each head's features contiguous
        # a^T [W h_i || W h_j] splits into a per-target and a per-source score.
        att = torch.cat([self.att_src, self.att_dst]).transpose(0, 1)  # (H, 2, C)
        scores = torch.bmm(att, h.transpose(1, 2))  # (H, 2, N): one small product for both terms
        score_src, score_dst = scores[:, 0], scores[:, 1]  # (H, N) each
        out = graph_attention(score_src, score_dst, h, graph, self.negative_slope, self.dropout, self.training)
        return out.transpose(0, 1).reshape(n, -1) if self.concat else out.mean(dim=0)

    def _attend_scatter(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        score_src = (h * self.att_src).sum(-1)  # (N, H)
        score_dst = (h * self.att_dst).sum(-1)  # (N, H)
        if self.add_loops:  # a node attends to itself too (the paper's N(i) includes i)
            edge_index, _ = add_self_loops(edge_index, n)
        source, target = edge_index[0], edge_index[1]
        e = F.leaky_relu(score_src[source] + score_dst[target], self.negative_slope)  # (E, H)
        alpha = segment_softmax(e, target, n)
        alpha = F.dropout(alpha, self.dropout, self.training)
        out = self.propagate(edge_index, h, alpha=alpha)  # (N, H, C)
        return out.reshape(n, -1) if self.concat else out.mean(dim=1)

    def message(self, x_j: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return alpha.unsqueeze(-1) * x_j  # (E, H, C)


class GINConv(MessagePassing):
    """Graph isomorphism layer (Xu et al. 2019, eq. 4.1): h_i' = MLP((1 + eps) h_i + sum_j h_j).

    ``mlp`` maps (N, in) -> (N, out). ``eps`` is a fixed buffer, or a parameter
    when ``train_eps`` (GIN-eps; GIN-0 fixes it at 0). The injective sum is what
    lets GIN tell apart neighbourhoods that a mean or max would merge.
    ``propagation`` and ``cache`` as in :class:`GCNConv`.
    """

    def __init__(
        self,
        mlp: nn.Module,
        eps: float = 0.0,
        train_eps: bool = False,
        propagation: str = "auto",
        cache: AdjacencyCache | None = None,
    ) -> None:
        super().__init__("sum")
        self.mlp = mlp
        self.initial_eps = eps
        self.propagation = propagation
        if train_eps:
            self.eps = nn.Parameter(torch.empty(1))
        else:
            self.register_buffer("eps", torch.empty(1))
        self._cache = AdjacencyCache() if cache is None else cache
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.mlp.modules():
            if m is not self.mlp and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        with torch.no_grad():
            self.eps.fill_(self.initial_eps)
        self._cache.clear()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if not use_sparse(self.propagation, x):
            return self.propagate(edge_index, x)
        adj = self._cache.get(  # A itself: every edge weighs 1
            edge_index, None, n, x.dtype, lambda: sparse_adjacency(edge_index, n, x.new_ones(edge_index.shape[1]))
        )
        return self.propagate_sparse(adj, x)

    def update(self, aggregated: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
        return self.mlp(aggregated + (1 + self.eps) * root)


# ---------------------------------------------------------------------------- readouts and DropEdge


class AttentionReadout(nn.Module):
    """Gated attention pooling (Ilse et al. 2018, eq. 9; cf. Li et al. 2016, eq. 7).

    s_v = w^T (tanh(V h_v) * sigmoid(U h_v)), a_v = softmax of s over the nodes of
    v's graph, h_G = sum_v a_v h_v. x (N, F), batch (N,) -> (G, F).
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.value = nn.Linear(channels, hidden)  # V
        self.gate = nn.Linear(channels, hidden)  # U: the sigmoid gate
        self.score = nn.Linear(hidden, 1)  # w

    def forward(self, x: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        s = self.score(torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x)))  # (N, 1)
        a = segment_softmax(s, batch, num_graphs)  # (N, 1)
        return global_pool(a * x, batch, num_graphs, "sum")  # (G, F)


class Readout(nn.Module):
    """Node features (N, F) -> graph features (G, F): sum, mean, max or gated attention."""

    def __init__(self, kind: str, channels: int) -> None:
        super().__init__()
        if kind not in ("sum", "mean", "max", "attention"):
            raise ValueError(f"unknown readout {kind!r}; choose from sum, mean, max, attention")
        self.kind = kind
        self.attention = AttentionReadout(channels) if kind == "attention" else None

    def forward(self, x: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        if self.attention is not None:
            return self.attention(x, batch, num_graphs)
        return global_pool(x, batch, num_graphs, self.kind)


class DropEdge(nn.Module):
    """DropEdge (Rong et al. 2020): in training, keep each edge with probability 1 - p.

    Each direction of an undirected edge is dropped independently. In eval mode,
    or at p = 0, the graph passes through unchanged.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropEdge probability must be in [0, 1), got {p}")
        self.p = p

    def forward(
        self, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.training or self.p == 0.0:
            return edge_index, edge_weight
        keep = torch.rand(edge_index.shape[1], device=edge_index.device) >= self.p
        return edge_index[:, keep], None if edge_weight is None else edge_weight[keep]

    def extra_repr(self) -> str:
        return f"p={self.p}"


def graph_index(x: torch.Tensor, batch: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """The (N,) graph index of each node and the number of graphs G (None: one graph).

    G = max(batch) + 1, so trailing graphs without nodes are not counted.
    """
    if batch is None:
        return torch.zeros(x.shape[0], dtype=torch.long, device=x.device), 1
    return batch, int(batch.max()) + 1 if batch.numel() else 0


__all__ = [
    "AttentionReadout", "DropEdge", "GATConv", "GCNConv", "GINConv", "Readout", "SAGEConv", "SparseFeatures",
    "graph_index", "project",
]
