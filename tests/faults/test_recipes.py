"""Bad recipes and overrides fail with one line before a run folder exists (issue 14, items 5-8, recipe side).

Each case goes through the real CLI entry point in-process (``deepatlas.cli.main``) and
asserts exit code 2, a single ``error:`` line naming the key, no traceback, and an empty
run store. The GAE recipe is trained end to end on a generated graph CSV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import deepatlas
from deepatlas.build import check_model_size
from deepatlas.cli import main
from deepatlas.config import load_recipe
from deepatlas.errors import ConfigError


def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """Exit code and stderr of ``deepatlas ARGS`` run in this process."""
    monkeypatch.setattr(sys, "argv", ["deepatlas", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, runs: Path, *args: str) -> str:
    """The one-line error of a ``deepatlas train`` that must fail before creating a run."""
    code, err = cli(capsys, monkeypatch, "train", *args, "--runs-dir", str(runs))
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert not runs.exists() or not any(runs.glob("*/config.yaml")), "no run folder before validation passed"
    return err


def write_graph_csv(folder: Path, n: int = 40, seed: int = 0) -> tuple[Path, Path]:
    """Two communities of ``n/2`` nodes, dense inside and sparse across, with 3 noisy features."""
    rng = np.random.default_rng(seed)
    block = np.arange(n) // (n // 2)
    edges = [(u, v) for u in range(n) for v in range(u + 1, n)
             if rng.random() < (0.3 if block[u] == block[v] else 0.02)]
    edges_path, nodes_path = folder / "edges.csv", folder / "nodes.csv"
    edges_path.write_text("source,target\n" + "".join(f"n{u},n{v}\n" for u, v in edges), encoding="utf-8")
    features = rng.normal(size=(n, 3)) + block[:, None]
    nodes_path.write_text(
        "id,label,f0,f1,f2\n" + "".join(f"n{i},{'ab'[block[i]]},{','.join(f'{x:.4f}' for x in features[i])}\n" for i in range(n)),
        encoding="utf-8",
    )
    return edges_path, nodes_path


# --------------------------------------------------------------------------- item 5: a new data name keeps shared keys


def test_changing_the_dataset_keeps_the_recipes_link_options(tmp_path: Path) -> None:
    config = load_recipe("gae-cora-links", ["data.name=graph-csv", "data.path=e.csv", "data.nodes_path=n.csv"])
    assert config.data.options.links is True and config.data.options.embedding_dim == 16
    # keys the new dataset lacks are dropped without an error; a model still starts from its preset
    assert load_recipe("quickstart", ["data.name=tiny-shakespeare", "task.name=causal-lm", "model.name=gpt-tiny"]).data.name == "tiny-shakespeare"
    assert load_recipe("resnet20-fashion-mnist", ["model.name=resnet56"]).model.options.layers == (9, 9, 9)


def test_gae_recipe_trains_link_prediction_on_your_graph_csv(tmp_path: Path) -> None:
    edges, nodes = write_graph_csv(tmp_path)
    run = deepatlas.train(
        "gae-cora-links",
        ["data.name=graph-csv", f"data.path={edges}", f"data.nodes_path={nodes}", "train.epochs=3", "train.test=true"],
        runs_dir=tmp_path / "runs", progress=False,
    )
    assert run.summary["status"] == "completed", run.summary.get("reason")
    test = run.summary["eval"]["test"]
    assert 0.0 <= test["auc"] <= 1.0 and 0.0 <= test["ap"] <= 1.0


def test_link_task_on_node_data_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    edges, nodes = write_graph_csv(tmp_path)
    err = refused(capsys, monkeypatch, tmp_path / "runs", "gae-cora-links", "data.name=graph-csv", f"data.path={edges}",
                  f"data.nodes_path={nodes}", "data.links=false")
    assert "data.links" in err and "set data.links=true" in err


# --------------------------------------------------------------------------- item 6: tracebacks become one line


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01binary", b"model:\n  name: mlp\n\x00\n", "model: {name: caf\xe9}".encode("latin-1")])
def test_a_recipe_that_is_not_utf8_text_is_one_line(
    content: bytes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert str(path) in refused(capsys, monkeypatch, tmp_path / "runs", str(path))


@pytest.mark.parametrize("override", ["model.width=100000000000000000000", "train.seed=100000000000000000000", "train.seed=-100000000000000000000"])
def test_integers_beyond_64_bits_are_refused(
    override: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    err = refused(capsys, monkeypatch, tmp_path / "runs", "quickstart", override)
    assert override.split("=")[0] in err and "out of range" in err


def test_a_model_too_large_for_memory_names_the_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    err = refused(capsys, monkeypatch, tmp_path / "runs", "gpt-shakespeare-char", "model.n_embd=10000000000")
    assert "model.n_embd=10000000000" in err and "reduce model.n_embd" in err
    err = refused(capsys, monkeypatch, tmp_path / "runs", "quickstart", "model.width=100000000")
    assert "model.width" in err and "GB" in err


def test_model_size_check_compares_weights_with_free_memory() -> None:
    config = load_recipe("quickstart")
    check_model_size(config, available=10**9)  # the quickstart MLP: well under 1 GB
    with pytest.raises(ConfigError, match="pick a smaller model.name"):
        check_model_size(config, available=1000)  # nothing set above the preset: the preset itself is too big


@pytest.mark.parametrize(("recipe", "override", "task", "data", "fits"), [
    ("quickstart", "data.name=tiny-shakespeare", "classification", "tiny-shakespeare", "fashion-mnist"),
    ("gcn-cora", "data.name=digits", "node-classification", "digits", "graph-csv"),
    ("gin-graph-atlas", "data.name=cora", "graph-classification", "cora", "graph-atlas"),
])
def test_task_and_data_of_different_kinds_name_both(
    recipe: str, override: str, task: str, data: str, fits: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    err = refused(capsys, monkeypatch, tmp_path / "runs", recipe, override)
    assert f"task {task!r}" in err and f"dataset {data!r}" in err and fits in err


# --------------------------------------------------------------------------- item 7: nonsense is refused


def test_a_key_given_twice_names_the_key_and_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("extends: quickstart\ntrain:\n  epochs: 2\n  seed: 1\n  epochs: 3\n", encoding="utf-8")
    err = refused(capsys, monkeypatch, tmp_path / "runs", str(path))
    assert "line 5" in err and "'epochs' is given twice" in err and "line 3" in err


def test_topk_above_the_number_of_classes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    err = refused(capsys, monkeypatch, tmp_path / "runs", "quickstart", "task.topk=100")
    assert "task.topk: 100" in err and "10 classes" in err
    assert load_recipe("gcn-cora", ["data.name=pubmed"]).task.options.topk == 5  # the preset k on 3 classes stays allowed


# --------------------------------------------------------------------------- item 8: validated before the run folder exists


def test_unknown_monitor_fails_before_the_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    err = refused(capsys, monkeypatch, tmp_path / "runs", "quickstart", "train.monitor=bogus")
    assert "train.monitor: 'val/bogus'" in err and "val/accuracy" in err


@pytest.mark.parametrize("value", ["inf", "-inf", ".inf", "nan", "1e400"])
def test_non_finite_numbers_are_refused(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    err = refused(capsys, monkeypatch, tmp_path / "runs", "quickstart", f"optim.lr={value}")
    assert "optim.lr" in err and "finite" in err


def test_fp16_on_the_cpu_fails_before_the_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    err = refused(capsys, monkeypatch, tmp_path / "runs", "quickstart", "train.precision=fp16", "train.device=cpu")
    assert "train.precision" in err and "bf16" in err


def test_the_saved_resolved_config_of_a_good_run_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"extends": "quickstart", "train": {"seed": 2**63 - 1}}), encoding="utf-8")
    assert load_recipe(path).train.seed == 2**63 - 1  # the largest 64-bit seed is allowed


def test_an_allocation_failure_while_building_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepatlas.build as build_module

    def fail(config: object) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(build_module, "check_model_size", lambda config: None)  # as if the estimate let it through
    monkeypatch.setattr(build_module, "build_model", fail)
    with pytest.raises(ConfigError, match="mlp with model.width=300 does not fit in memory; reduce model.width"):
        build_module.build(load_recipe("quickstart", ["model.width=300"]), {"num_classes": 10, "in_channels": 1, "input_size": 8})
