"""Graph layers and models: message passing, shapes, readouts, DropEdge, expressiveness, Deep Sets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepatlas.models import count_parameters
from deepatlas.models.gnn import (
    GAT,
    GCN,
    GIN,
    DeepSets,
    DeepSetsConfig,
    GATConfig,
    GCNConfig,
    GINConfig,
    GraphSAGE,
    SAGEConfig,
)
from deepatlas.nn import gnn
from deepatlas.nn.gnn import (
    AttentionReadout,
    DropEdge,
    GATConv,
    GCNConv,
    GINConv,
    SAGEConv,
    SparseFeatures,
)
from deepatlas.nn.message_passing import (
    AdjacencyCache,
    MessagePassing,
    add_self_loops,
    degree,
    gcn_norm,
    scatter,
    segment_softmax,
    sparse_adjacency,
)
from deepatlas.registry import create_model


def random_graph(n: int = 20, e: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, n, (2, e), generator=g)


def cycle(n: int) -> torch.Tensor:
    """Both directions of the n-cycle 0-1-...-(n-1)-0: (2, 2n)."""
    a = torch.arange(n)
    b = (a + 1) % n
    return torch.stack([torch.cat([a, b]), torch.cat([b, a])])


def batched(*graphs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Block-diagonal batch of (x, edge_index) graphs: x, edge_index, batch."""
    xs, edges, batch, offset = [], [], [], 0
    for i, (x, ei) in enumerate(graphs):
        xs.append(x)
        edges.append(ei + offset)
        batch.append(torch.full((x.shape[0],), i))
        offset += x.shape[0]
    return torch.cat(xs), torch.cat(edges, dim=1), torch.cat(batch)


# ---------------------------------------------------------------------------- message passing


def test_scatter_reductions_and_empty_targets() -> None:
    src = torch.tensor([[1.0], [3.0], [-2.0], [-5.0]])
    index = torch.tensor([0, 0, 2, 2])
    assert scatter(src, index, 4, "sum").flatten().tolist() == [4.0, 0.0, -7.0, 0.0]
    assert scatter(src, index, 4, "mean").flatten().tolist() == [2.0, 0.0, -3.5, 0.0]
    # max: the zero the output starts from must not beat negative messages
    assert scatter(src, index, 4, "max").flatten().tolist() == [3.0, 0.0, -2.0, 0.0]


@pytest.mark.parametrize("aggr", ["sum", "mean", "max"])
def test_isolated_node_aggregates_to_zero(aggr: str) -> None:
    x = torch.tensor([[-1.0, -2.0], [-3.0, -4.0], [5.0, 6.0]])
    edge_index = torch.tensor([[0, 1], [1, 0]])  # node 2 has no neighbours
    out = MessagePassing(aggr).propagate(edge_index, x)
    assert out[2].tolist() == [0.0, 0.0]
    assert out[0].tolist() == [-3.0, -4.0]


def test_sage_max_isolated_node_gets_only_its_root_term() -> None:
    conv = SAGEConv(3, 4, aggr="max")
    x, edge_index = torch.randn(3, 3), torch.tensor([[0, 1], [1, 0]])
    out = conv(x, edge_index)
    torch.testing.assert_close(out[2], conv.lin_l.bias + conv.lin_r(x[2]))


def test_segment_softmax_sums_to_one_per_target() -> None:
    src = torch.randn(50, 3) * 10
    index = torch.randint(0, 8, (50,))
    out = segment_softmax(src, index, 10)
    sums = scatter(out, index, 10, "sum")
    present = torch.bincount(index, minlength=10) > 0
    torch.testing.assert_close(sums[present], torch.ones(int(present.sum()), 3))
    assert (sums[~present] == 0).all()
    assert (out > 0).all()


def test_segment_softmax_is_stable_for_large_scores() -> None:
    out = segment_softmax(torch.tensor([1000.0, 1001.0, -1000.0]), torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(out, torch.tensor([1 / (1 + torch.e), torch.e / (1 + torch.e), 1.0]))


def test_add_self_loops_replaces_existing_loops_keeping_their_weight() -> None:
    edge_index = torch.tensor([[0, 1, 1], [1, 0, 1]])
    out, w = add_self_loops(edge_index, 3, torch.tensor([2.0, 3.0, 7.0]))
    assert out.tolist() == [[0, 1, 0, 1, 2], [1, 0, 0, 1, 2]]
    assert w.tolist() == [2.0, 3.0, 1.0, 7.0, 1.0]
    assert add_self_loops(edge_index, 3)[1] is None


def test_gcn_norm_is_the_renormalised_symmetric_adjacency() -> None:
    edge_index = cycle(4)
    ei, w = gcn_norm(edge_index, 4)
    dense = torch.zeros(4, 4).index_put_((ei[1], ei[0]), w, accumulate=True)
    a_tilde = torch.eye(4) + torch.zeros(4, 4).index_put_((edge_index[1], edge_index[0]), torch.ones(8))
    d = a_tilde.sum(1).rsqrt()
    torch.testing.assert_close(dense, d[:, None] * a_tilde * d[None, :])
    assert degree(edge_index[1], 4).tolist() == [2.0, 2.0, 2.0, 2.0]


def test_sparse_adjacency_sums_duplicate_edges() -> None:
    edge_index = torch.tensor([[0, 0, 1], [1, 1, 0]])
    adj = sparse_adjacency(edge_index, 2, torch.tensor([1.0, 2.0, 5.0]))
    assert adj.layout == torch.sparse_csr
    assert adj.to_dense().tolist() == [[0.0, 5.0], [3.0, 0.0]]


def test_adjacency_cache_hits_the_same_tensor_and_misses_edits() -> None:
    cache, calls = AdjacencyCache(), []
    edge_index = torch.tensor([[0, 1], [1, 0]])

    def build() -> torch.Tensor:
        calls.append(1)
        return torch.zeros(1)

    for _ in range(3):
        cache.get(edge_index, None, 2, torch.float32, build)
    assert len(calls) == 1
    cache.get(edge_index.clone(), None, 2, torch.float32, build)  # equal values, another tensor
    cache.get(edge_index, None, 2, torch.float32, build)
    edge_index[0, 0] = 1  # in place: the version counter moves
    cache.get(edge_index, None, 2, torch.float32, build)
    cache.get(edge_index, None, 3, torch.float32, build)
    cache.get(edge_index, None, 3, torch.float64, build)
    assert len(calls) == 6


def make_layer(kind: str, propagation: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "gcn":
        return GCNConv(6, 5, propagation=propagation)
    if kind == "sage-narrow":
        return SAGEConv(6, 5, propagation=propagation)
    if kind == "sage-wide":
        return SAGEConv(6, 9, propagation=propagation)
    return GINConv(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 5)), eps=0.3, propagation=propagation)


@pytest.mark.parametrize("kind", ["gcn", "sage-narrow", "sage-wide", "gin"])
def test_sparse_and_scatter_paths_agree_with_gradients(kind: str) -> None:
    x, edge_index = random_graph()
    outputs, grads = [], []
    for propagation in ("sparse", "scatter"):
        layer = make_layer(kind, propagation)
        xi = x.clone().requires_grad_()
        out = layer(xi, edge_index)
        out.square().sum().backward()
        outputs.append(out)
        grads.append([xi.grad, *[p.grad for p in layer.parameters()]])
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_gcn_edge_weights_get_gradients_on_the_auto_path() -> None:
    x, edge_index = random_graph()
    w = torch.rand(edge_index.shape[1], requires_grad=True)
    conv = GCNConv(6, 4)
    conv(x, edge_index, w).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="propagation='sparse'"):
        GCNConv(6, 4, propagation="sparse")(x, edge_index, w)


def test_gcn_precomputed_adjacency_and_cache_reuse() -> None:
    x, edge_index = random_graph()
    conv = GCNConv(6, 4)
    adj = conv.adjacency(edge_index, x.shape[0])
    torch.testing.assert_close(conv(x, edge_index, adj=adj), conv(x, edge_index))
    cached = conv._cache._adj
    conv(x, edge_index)
    assert conv._cache._adj is cached  # the same graph is not rebuilt


def test_gat_conv_shapes_and_attention_dropout_only_in_training() -> None:
    x, edge_index = random_graph()
    conv = GATConv(6, 3, heads=4, dropout=0.5)
    assert conv(x, edge_index).shape == (20, 12)
    assert GATConv(6, 3, heads=4, concat=False)(x, edge_index).shape == (20, 3)
    conv.eval()
    torch.testing.assert_close(conv(x, edge_index), conv(x, edge_index))
    conv.train()
    assert not torch.allclose(conv(x, edge_index), conv(x, edge_index))


@pytest.mark.parametrize("name", ["gcn", "graphsage", "gin"])
def test_models_build_the_adjacency_once_per_graph(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []
    real = gnn.sparse_adjacency
    monkeypatch.setattr(gnn, "sparse_adjacency", lambda *args: builds.append(1) or real(*args))
    model = create_model(name, in_channels=6, num_classes=3)
    x, edge_index = random_graph()
    for _ in range(3):  # the layers share one cache, and full-batch steps reuse it
        model(x, edge_index).sum().backward()
    assert len(builds) == 1
    model(x, edge_index.clone())
    assert len(builds) == 2


@pytest.mark.parametrize("layer", ["gcn", "sage-narrow", "gin"])
def test_reset_parameters_restores_the_initial_distribution(layer: str) -> None:
    conv = make_layer(layer, "auto")
    with torch.no_grad():
        for p in conv.parameters():
            p.fill_(3.0)
    conv.reset_parameters()
    assert all((p != 3.0).any() for p in conv.parameters() if p.numel() > 1)


# ---------------------------------------------------------------------------- models


NODE_MODELS = [
    (GCN, GCNConfig(in_channels=6, num_classes=3)),
    (GraphSAGE, SAGEConfig(in_channels=6, num_classes=3, hidden=8)),
    (GraphSAGE, SAGEConfig(in_channels=6, num_classes=3, hidden=8, aggr="max", normalize=True)),
    (GAT, GATConfig(in_channels=6, num_classes=3, hidden=4, heads=2)),
]


@pytest.mark.parametrize(("cls", "config"), NODE_MODELS)
def test_node_models_give_node_logits(cls: type, config: object) -> None:
    x, edge_index = random_graph()
    assert cls(config)(x, edge_index).shape == (20, 3)


@pytest.mark.parametrize("readout", ["sum", "mean", "max", "attention"])
@pytest.mark.parametrize("name", ["gcn", "gat", "graphsage", "gin", "gcn-graph"])
def test_graph_readouts_give_graph_logits_and_batch_like_single_graphs(name: str, readout: str) -> None:
    model = create_model(name, in_channels=6, num_classes=3, readout=readout).eval()
    graphs = [random_graph(5, 8, seed=1), random_graph(7, 12, seed=2), random_graph(4, 5, seed=3)]
    x, edge_index, batch = batched(*graphs)
    out = model(x, edge_index, batch)
    assert out.shape == (3, 3)
    for i, (xi, ei) in enumerate(graphs):  # block-diagonal batching changes nothing
        torch.testing.assert_close(out[i : i + 1], model(xi, ei), atol=1e-5, rtol=1e-5)


def test_attention_readout_weights_are_a_softmax_per_graph() -> None:
    pool = AttentionReadout(4)
    x = torch.ones(5, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])  # identical nodes: any convex weights give x
    out = pool(x, torch.tensor([0, 0, 0, 1, 1]), 2)
    torch.testing.assert_close(out, x[:2])


def test_drop_edge_only_in_training() -> None:
    drop = DropEdge(0.5)
    edge_index, w = torch.randint(0, 100, (2, 1000)), torch.rand(1000)
    kept, kept_w = drop(edge_index, w)
    assert 350 < kept.shape[1] < 650 and kept_w.shape == (kept.shape[1],)
    drop.eval()
    assert drop(edge_index, w)[0] is edge_index
    with pytest.raises(ValueError):
        DropEdge(1.0)


def test_drop_edge_in_a_model_changes_training_not_evaluation() -> None:
    x, edge_index = random_graph(30, 200)
    torch.manual_seed(0)
    plain = create_model("gcn", in_channels=6, num_classes=3, dropout=0.0)
    torch.manual_seed(0)
    dropping = create_model("gcn", in_channels=6, num_classes=3, dropout=0.0, drop_edge=0.5)
    torch.testing.assert_close(plain.eval()(x, edge_index), dropping.eval()(x, edge_index))
    assert not torch.allclose(plain.train()(x, edge_index), dropping.train()(x, edge_index))


def test_gin_sum_readout_separates_regular_graphs_a_mean_readout_cannot() -> None:
    # A triangle and a hexagon: every node has degree 2 and the same features, so every
    # layer gives every node the same embedding; only the sum sees how many there are.
    x, edge_index, batch = batched((torch.ones(3, 1), cycle(3)), (torch.ones(6, 1), cycle(6)))
    for readout, separates in (("sum", True), ("mean", False)):
        torch.manual_seed(0)
        model = GIN(GINConfig(in_channels=1, num_classes=2, hidden=16, num_layers=3, readout=readout)).eval()
        out = model(x, edge_index, batch)
        assert (not torch.allclose(out[0], out[1], atol=1e-4)) is separates, readout


def test_gin_train_eps_is_a_parameter() -> None:
    model = GIN(GINConfig(in_channels=3, num_classes=2, hidden=8, num_layers=2, train_eps=True))
    names = {n for n, _ in model.named_parameters()}
    assert "convs.0.eps" in names
    assert "convs.0.eps" in dict(GIN(GINConfig(in_channels=3, num_classes=2)).named_buffers())


def test_deepsets_is_permutation_invariant_and_batches_sets() -> None:
    model = DeepSets(DeepSetsConfig(in_channels=3, num_classes=4, hidden=16)).eval()
    x = torch.randn(10, 3)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    out = model(x, batch=batch)
    assert out.shape == (3, 4)
    perm = torch.randperm(10)
    torch.testing.assert_close(model(x[perm], batch=batch[perm]), out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x[3:7]), out[1:2], atol=1e-5, rtol=1e-5)


def test_preset_sizes_match_the_papers() -> None:
    # Kipf & Welling's Cora GCN: 1433*16 + 16 + 16*7 + 7; Velickovic's Cora GAT: 8 heads x 8
    # (weights, two attention vectors, bias) + one output head.
    assert count_parameters(create_model("gcn")) == 1433 * 16 + 16 + 16 * 7 + 7
    assert count_parameters(create_model("gat")) == 1433 * 64 + 3 * 64 + 64 * 7 + 3 * 7
    gin = create_model("gin")
    assert len(gin.convs) == 5 and gin.head.in_features == 7 + 5 * 64


@pytest.mark.parametrize("name", ["gcn", "gat"])
def test_sparse_input_features_give_the_dense_outputs_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    x = (torch.rand(60, 200) < 0.03).float()  # bag-of-words-like: about 3% nonzero
    edge_index = torch.randint(0, 60, (2, 300))
    dense = create_model(name, in_channels=200, num_classes=5, sparse_features=False).eval()
    sparse = create_model(name, in_channels=200, num_classes=5, sparse_features=True).eval()
    sparse.load_state_dict(dense.state_dict())
    out_d, out_s = dense(x, edge_index), sparse(x, edge_index)
    assert sparse.sparse_features.get(x) is not None  # the CSR path was taken
    torch.testing.assert_close(out_s, out_d, rtol=1e-5, atol=1e-6)
    out_d.square().sum().backward()
    out_s.square().sum().backward()
    for (n, p_d), p_s in zip(dense.named_parameters(), sparse.parameters(), strict=True):
        torch.testing.assert_close(p_s.grad, p_d.grad, rtol=1e-4, atol=1e-6, msg=n)
    assert SparseFeatures().get(torch.rand(10, 10)) is None  # dense features stay dense


def test_sparse_input_dropout_only_touches_nonzeros_and_trains() -> None:
    torch.manual_seed(0)
    x = (torch.rand(60, 200) < 0.03).float()
    model = create_model("gcn", in_channels=200, num_classes=5).train()
    dropped = model._first_input(x)
    assert dropped.layout == torch.sparse_csr
    kept = dropped.to_dense()
    assert ((kept != 0) <= (x != 0)).all() and set(kept.unique().tolist()) <= {0.0, 2.0}
    model(x, torch.randint(0, 60, (2, 300))).sum().backward()
    assert model.convs[0].lin.weight.grad is not None
