"""The run store: folders, the SQLite index under concurrent writers, lookup, comparison."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

import deepatlas
from deepatlas.errors import RunError
from deepatlas.tracking import Run, RunStore
from tests.conftest import tiny_recipe


def _writer(root: str, worker: int, count: int) -> None:
    store = RunStore(root)
    for i in range(count):
        path = Path(root) / f"w{worker}-{i}"
        path.mkdir(parents=True)
        (path / "config.yaml").write_text("{}")
        Run(path, store).write_summary({"id": path.name, "status": "completed", "created": f"{worker}-{i}"})


def test_concurrent_writers_lose_no_rows(tmp_path: Path) -> None:
    workers, count = 4, 25
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    rows = RunStore(tmp_path).rows()
    assert len(rows) == workers * count
    assert len({r["id"] for r in rows}) == workers * count
    import sqlite3

    assert sqlite3.connect(tmp_path / "index.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_index_is_rebuilt_from_folders(tmp_path: Path) -> None:
    _writer(str(tmp_path), 0, 3)
    (tmp_path / "index.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"index.sqlite{suffix}").unlink(missing_ok=True)
    assert len(RunStore(tmp_path).rows()) == 3


def test_open_by_id_prefix_path_and_helpful_errors(tmp_path: Path) -> None:
    _writer(str(tmp_path), 0, 2)
    store = RunStore(tmp_path)
    assert store.open("w0-1").id == "w0-1"
    assert store.open(tmp_path / "w0-0").id == "w0-0"
    with pytest.raises(RunError, match="ambiguous"):
        store.open("w0")
    with pytest.raises(RunError, match="Did you mean 'w0-1'"):
        store.open("w0-l")
    with pytest.raises(RunError, match="no runs there"):
        RunStore(tmp_path / "empty").open("x")


def test_list_filter_and_compare_warns_on_different_data() -> None:
    a = deepatlas.train("quickstart", tiny_recipe(), progress=False)
    b = deepatlas.train("quickstart", tiny_recipe(**{"optim.lr": 0.003}), progress=False)
    c = deepatlas.train("quickstart", tiny_recipe(**{"data.split_seed": 1}), progress=False)
    rows = deepatlas.list_runs(recipe="quickstart", status="completed")
    assert [r["id"] for r in rows][:3] == [c.id, b.id, a.id]
    assert deepatlas.list_runs(status="failed") == []
    same = deepatlas.compare_runs([a.id, b.id])
    assert same["config"] == {"optim.lr": [0.01, 0.003]} and same["warnings"] == []
    assert "best val/accuracy" in same["metrics"]
    different = deepatlas.compare_runs([a.id, c.id])
    assert any("different train data" in w for w in different["warnings"])


def test_aggregate_reports_mean_and_sample_std_per_group() -> None:
    from deepatlas.tracking.compare import aggregate

    def row(recipe: str, acc: float, status: str = "completed") -> dict:
        return {"recipe": recipe, "model": "gcn", "dataset": "cora", "status": status,
                "summary": {"eval": {"test": {"accuracy": acc}}, "time": {"wall_s": 2.0}}}

    groups = aggregate([row("a", 0.80), row("a", 0.82), row("a", 0.84), row("a", 0.10, "failed"), row("b", 0.5)])
    a = next(g for g in groups if g["recipe"] == "a")
    assert a["runs"] == 3 and abs(a["metrics"]["accuracy"]["mean"] - 0.82) < 1e-12
    assert abs(a["metrics"]["accuracy"]["std"] - 0.02) < 1e-12 and a["mean_wall_s"] == 2.0
    assert next(g for g in groups if g["recipe"] == "b")["metrics"]["accuracy"]["std"] == 0.0
