"""The fused graph-attention Function: gradients (gradcheck, float64) and equality with the scatter path."""

from __future__ import annotations

import pytest
import torch

from deepatlas.nn.edge_attention import GraphAttention, csr_graph, graph_attention
from deepatlas.nn.gnn import GATConv


def tiny_graph(n: int = 7, e: int = 18, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, e), generator=g)
    return torch.cat([edge_index, edge_index[:, :3]], dim=1)  # duplicates count twice


@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("self_loops", [True, False])
def test_graph_attention_gradcheck(dropout: bool, self_loops: bool) -> None:
    n, heads, channels = 7, 2, 3
    graph = csr_graph(tiny_graph(n), n, self_loops)
    g = torch.Generator().manual_seed(1)
    score_src = torch.randn(heads, n, generator=g, dtype=torch.float64, requires_grad=True)
    score_dst = torch.randn(heads, n, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(heads, n, channels, generator=g, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(heads, graph.num_edges, generator=g) >= 0.5 if dropout else None
    scale = 2.0 if dropout else 1.0

    def f(s: torch.Tensor, d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return GraphAttention.apply(s, d, x, graph, 0.2, keep, scale)

    assert torch.autograd.gradcheck(f, (score_src, score_dst, h))


def test_graph_attention_is_the_softmax_weighted_sum() -> None:
    n, heads, channels = 7, 2, 3
    edge_index = tiny_graph(n)
    graph = csr_graph(edge_index, n)
    g = torch.Generator().manual_seed(2)
    score_src, score_dst = torch.randn(heads, n, generator=g), torch.randn(heads, n, generator=g)
    h = torch.randn(heads, n, channels, generator=g)
    out = graph_attention(score_src, score_dst, h, graph)
    e = torch.nn.functional.leaky_relu(score_src[:, graph.source] + score_dst[:, graph.target], 0.2)
    expected = torch.zeros(heads, n, channels)
    for i in range(n):
        edges = graph.target == i
        alpha = e[:, edges].softmax(dim=1)  # (H, deg)
        expected[:, i] = torch.einsum("hd,hdc->hc", alpha, h[:, graph.source[edges]])
    torch.testing.assert_close(out, expected)


def test_csr_graph_sorts_by_target_and_indexes_the_transpose() -> None:
    n = 7
    graph = csr_graph(tiny_graph(n), n)
    assert torch.all(graph.target[1:] >= graph.target[:-1])
    assert graph.crow[-1] == graph.num_edges and torch.equal(graph.crow.diff(), graph.counts)
    assert torch.equal(graph.t_col, graph.target[graph.t_perm])
    assert torch.all(graph.source[graph.t_perm].diff() >= 0)
    loops = graph.source == graph.target
    assert torch.equal(graph.target[loops], torch.arange(n))  # exactly one self-loop per node


@pytest.mark.parametrize("concat", [True, False])
def test_gat_sparse_and_scatter_paths_agree_in_training_without_dropout(concat: bool) -> None:
    x = torch.randn(30, 6)
    edge_index = tiny_graph(30, 120)
    sparse = GATConv(6, 4, heads=3, concat=concat, propagation="sparse")
    scatter = GATConv(6, 4, heads=3, concat=concat, propagation="scatter")
    scatter.load_state_dict(sparse.state_dict())
    out_sparse, out_scatter = sparse(x, edge_index), scatter(x, edge_index)
    torch.testing.assert_close(out_sparse, out_scatter)
    out_sparse.square().sum().backward()
    out_scatter.square().sum().backward()
    for (name, p), q in zip(sparse.named_parameters(), scatter.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_gat_attention_dropout_keeps_one_minus_p_and_rescales() -> None:
    torch.manual_seed(0)
    n = 400
    edge_index = tiny_graph(n, 4000)
    graph = csr_graph(edge_index, n)
    h = torch.ones(1, n, 1)
    zeros = torch.zeros(1, n)
    # Equal scores: alpha = 1 / degree, so the expected output per node is 1 with or without dropout.
    out = graph_attention(zeros, zeros, h, graph, dropout=0.6, training=True)
    assert abs(float(out.mean()) - 1.0) < 0.05
    torch.testing.assert_close(graph_attention(zeros, zeros, h, graph, dropout=0.6, training=False), torch.ones(1, n, 1))


def test_sparse_matmul_gradcheck_and_builds_the_transpose_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepatlas.nn import message_passing as mp

    n = 7
    edge_index = tiny_graph(n)
    adj = mp.sparse_adjacency(edge_index, n, torch.rand(edge_index.shape[1], dtype=torch.float64))
    x = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: mp.sparse_matmul(adj, v), (x,))
    built = []
    monkeypatch.setattr(mp, "_TRANSPOSES", mp.WeakIdKeyDictionary())
    real = torch.Tensor.to_sparse_csr
    monkeypatch.setattr(torch.Tensor, "to_sparse_csr", lambda self: built.append(1) or real(self))
    for _ in range(3):
        mp.sparse_matmul(adj, x).sum().backward()
    assert len(built) == 1
    torch.testing.assert_close(x.grad / 3, adj.to_dense().t() @ torch.ones(n, 3, dtype=torch.float64))
