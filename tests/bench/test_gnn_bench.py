"""`deepatlas bench gnn` on the synthetic dense-feature graph at a tiny size (timings are not asserted)."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from typer.testing import CliRunner

from deepatlas.bench.gnn import MODELS, GNNBench, run, synthetic_graph
from deepatlas.cli import app

with warnings.catch_warnings():  # PyG's import calls the deprecated torch.jit.script
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("torch_geometric", reason="bench gnn compares with PyTorch Geometric")

TINY = ["--dataset", "synthetic", "--nodes", "120", "--degree", "4", "--features", "12", "--calls", "1",
        "--rounds", "2", "--warmup", "1"]


def test_synthetic_graph_is_seeded_undirected_and_dense() -> None:
    a, b = synthetic_graph(200, 6, 16, 4, seed=3), synthetic_graph(200, 6, 16, 4, seed=3)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    edges = set(map(tuple, a.edge_index.t().tolist()))
    assert all((j, i) in edges for i, j in edges)  # both directions
    assert not any(i == j for i, j in edges) and len(edges) == a.edge_index.shape[1]  # no loops, no duplicates
    assert 4 <= a.edge_index.shape[1] / 200 <= 6 and bool((a.x != 0).all())
    same = (a.y[a.edge_index[0]] == a.y[a.edge_index[1]]).float().mean()
    assert same > 0.6  # homophilous: most edges join nodes of one class
    assert a.masks["train"].sum() == 20


def test_bench_runs_every_model_on_the_synthetic_graph() -> None:
    rows = run(GNNBench(datasets=("synthetic",), calls=1, rounds=2, warmup=1, nodes=120, degree=4, features=12))
    assert [r["model"] for r in rows] == list(MODELS)
    for r in rows:
        assert r["ours_ms"] > 0 and r["pyg_ms"] > 0
        assert r["ratio"] == pytest.approx(r["pyg_ms"] / r["ours_ms"])
        assert "dense features" in r["graph"]
    assert next(r for r in rows if r["model"] == "gat")["goal"] == 2.0


def test_bench_gnn_command_prints_rows_with_ratios() -> None:
    result = CliRunner().invoke(app, ["bench", "gnn", *TINY])
    assert result.exit_code == 0, result.output
    for name in MODELS:
        assert name in result.output
    assert len(re.findall(r"\d\.\d\dx", result.output)) >= len(MODELS)  # a ratio per row
    assert "synthetic (seed 0), dense features: 120 nodes" in result.output


def test_bench_gnn_rejects_an_unknown_model() -> None:
    result = CliRunner().invoke(app, ["bench", "gnn", "--model", "gin", *TINY])
    assert result.exit_code != 0 and "not benchmarked" in str(result.exception)


def test_bench_all_extras_include_the_synthetic_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from deepatlas.bench import gnn, lstm, suite

    monkeypatch.setattr(gnn, "GNNBench", functools.partial(GNNBench, nodes=120, degree=4, features=12))
    monkeypatch.setattr(lstm, "run", lambda *a, **k: {"tokens": 10, "fused_ms": 1.0, "torch_ms": 1.0, "fused_ratio": 1.0,
                                                      "spread": 0.0})
    rows = suite._extras(suite.Suite(calls=1, rounds=1, warmup=1), torch.device("cpu"))
    synthetic = {r["family"]: r for r in rows if "synthetic" in r["family"]}
    assert set(synthetic) == {f"{m} (synthetic)" for m in MODELS}
    assert synthetic["gat (synthetic)"]["goal"] == 2.0 and synthetic["gcn (synthetic)"]["goal"] == 1.0
    assert all(r["reference"] == "PyG" and r["ratio"] > 0 for r in synthetic.values())
    recurrent = {r["family"]: r["reference"] for r in rows if "fused" in r["family"]}
    assert recurrent == {"lstm (fused)": "torch.nn.LSTM", "gru (fused)": "torch.nn.GRU"}
