"""Our graph layers against PyTorch Geometric's, with identical weights, on Cora.

Cora comes from the Planetoid raw files in ``$DEEPATLAS_DATA_DIR/planetoid/``
(CI sets it to the shared data folder), copied into a temporary folder for
``torch_geometric.datasets.Planetoid`` to process.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from deepatlas.nn.gnn import GATConv, GCNConv, GINConv, SAGEConv

try:
    with warnings.catch_warnings():  # PyG's import calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", DeprecationWarning)
        import torch_geometric.nn as pyg_nn
        from torch_geometric.datasets import Planetoid
except ImportError:
    if os.environ.get("CI"):  # in CI the oracle is installed: never skip silently there
        raise
    pytest.skip("the PyG oracle needs `pip install torch_geometric` (test-only)", allow_module_level=True)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
ATOL = 1e-5


def planetoid_dir() -> Path | None:
    roots = [os.environ.get("DEEPATLAS_DATA_DIR", ""), str(SHARED)]
    for root in filter(None, roots):
        if (Path(root) / "planetoid" / "ind.cora.graph").is_file():
            return Path(root) / "planetoid"
    return None


@pytest.fixture(scope="module")
def cora(tmp_path_factory: pytest.TempPathFactory):
    source = planetoid_dir()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("Cora is missing: .ci/run must set DEEPATLAS_DATA_DIR to a folder with planetoid/ind.cora.*")
        pytest.skip("Cora (planetoid/ind.cora.*) not found in $DEEPATLAS_DATA_DIR or ../shared/data")
    root = tmp_path_factory.mktemp("planetoid")
    raw = root / "Cora" / "raw"
    raw.mkdir(parents=True)
    for f in source.glob("ind.cora.*"):
        shutil.copy(f, raw / f.name)
    return Planetoid(str(root), "Cora")[0]


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("propagation", ["sparse", "scatter"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_conv_equals_pyg(cora, propagation: str, weighted: bool) -> None:
    ours = GCNConv(cora.num_features, 16, propagation=propagation)
    theirs = pyg_nn.GCNConv(cora.num_features, 16)
    theirs.load_state_dict(ours.state_dict())  # the same names: lin.weight, bias
    nn.init.normal_(ours.bias)
    theirs.bias.data.copy_(ours.bias)
    w = torch.rand(cora.num_edges) if weighted else None
    assert_close(ours(cora.x, cora.edge_index, w), theirs(cora.x, cora.edge_index, w))


# The mean path aggregates before or after W_l, whichever is narrower: test both sides of 1433.
@pytest.mark.parametrize(("aggr", "out_channels"), [("mean", 16), ("mean", 2048), ("max", 16)])
def test_sage_conv_equals_pyg(cora, aggr: str, out_channels: int) -> None:
    ours = SAGEConv(cora.num_features, out_channels, aggr=aggr)
    theirs = pyg_nn.SAGEConv(cora.num_features, out_channels, aggr=aggr, project=aggr == "max")
    theirs.load_state_dict(ours.state_dict())  # lin (the pool layer), lin_l, lin_r
    assert_close(ours(cora.x, cora.edge_index), theirs(cora.x, cora.edge_index))


def test_sage_conv_normalize_equals_pyg(cora) -> None:
    ours = SAGEConv(cora.num_features, 16, normalize=True)
    theirs = pyg_nn.SAGEConv(cora.num_features, 16, normalize=True)
    theirs.load_state_dict(ours.state_dict())
    assert_close(ours(cora.x, cora.edge_index), theirs(cora.x, cora.edge_index))


@pytest.mark.parametrize("propagation", ["sparse", "scatter"])
@pytest.mark.parametrize("concat", [True, False])
def test_gat_conv_equals_pyg_in_eval(cora, concat: bool, propagation: str) -> None:
    ours = GATConv(cora.num_features, 8, heads=8, concat=concat, dropout=0.6, propagation=propagation).eval()
    theirs = pyg_nn.GATConv(cora.num_features, 8, heads=8, concat=concat, dropout=0.6).eval()
    theirs.load_state_dict(ours.state_dict())  # lin.weight, att_src, att_dst, bias
    nn.init.normal_(ours.bias)
    theirs.bias.data.copy_(ours.bias)
    out = ours(cora.x, cora.edge_index)
    assert out.shape == (cora.num_nodes, 64 if concat else 8)
    assert_close(out, theirs(cora.x, cora.edge_index))


@pytest.mark.parametrize("train_eps", [False, True])
@pytest.mark.parametrize("propagation", ["sparse", "scatter"])
def test_gin_conv_equals_pyg(cora, train_eps: bool, propagation: str) -> None:
    mlp = nn.Sequential(nn.Linear(cora.num_features, 32), nn.ReLU(), nn.Linear(32, 16))
    ours = GINConv(mlp, eps=0.25, train_eps=train_eps, propagation=propagation)
    theirs = pyg_nn.GINConv(mlp, eps=0.25, train_eps=train_eps)  # shares the very same MLP
    assert_close(ours(cora.x, cora.edge_index), theirs(cora.x, cora.edge_index))


@pytest.mark.parametrize("propagation", ["sparse", "scatter"])
def test_gat_conv_gradients_equal_pyg(cora, propagation: str) -> None:
    ours = GATConv(cora.num_features, 4, heads=2, propagation=propagation).eval()
    theirs = pyg_nn.GATConv(cora.num_features, 4, heads=2).eval()
    theirs.load_state_dict(ours.state_dict())
    ours(cora.x, cora.edge_index).square().sum().backward()
    theirs(cora.x, cora.edge_index).square().sum().backward()
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, their_params[name].grad, atol=1e-4, rtol=1e-4, msg=name)


def test_gat_conv_on_dense_features_with_duplicate_edges_equals_pyg() -> None:
    # The synthetic benchmark's regime: dense features, and a multigraph (an edge listed twice counts twice).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 32, generator=g)
    edge_index = torch.randint(0, 300, (2, 2000), generator=g)
    edge_index = torch.cat([edge_index, edge_index[:, :100]], dim=1)
    ours = GATConv(32, 8, heads=4).eval()
    theirs = pyg_nn.GATConv(32, 8, heads=4).eval()
    theirs.load_state_dict(ours.state_dict())
    out = ours(x, edge_index)
    assert_close(out, theirs(x, edge_index))
    out.square().sum().backward()
    theirs(x, edge_index).square().sum().backward()
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, their_params[name].grad, atol=1e-4, rtol=1e-4, msg=name)
