"""`deepatlas bench tune`: the accounting of the pruned search against random search."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepatlas.bench.tune import TuneBench, run
from tests.conftest import tiny_recipe


def test_pruned_search_is_charged_until_it_reaches_random_searchs_best(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DEEPATLAS_STUDY_STORAGE", raising=False)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"extends": "quickstart", "search": {"space": {
        "optim.lr": {"type": "float", "low": 1.0e-3, "high": 0.1, "log": True}}}}))
    overrides = tuple(o for o in tiny_recipe(**{"train.test": "false", "train.epochs": 3}) if not o.startswith("optim.lr="))
    lines: list[str] = []
    config = TuneBench(recipe=str(path), overrides=overrides, seeds=(0,), trials=3, max_trials=4)
    result = run(config, tmp_path / "runs", say=lines.append)
    row = result["rows"][0]
    from deepatlas.tune.report import open_study

    random_study, _, _ = open_study("bench-random-seed0", runs_dir=tmp_path / "runs")
    pruned_study, _, _ = open_study("bench-tpe-asha-seed0", runs_dir=tmp_path / "runs")
    complete = [t.values[0] for t in random_study.trials if t.values]
    assert len(random_study.trials) == 3 and row["target"] == pytest.approx(max(complete))
    flops = sum(t.user_attrs["train_flops"] for t in random_study.trials)
    assert row["random"]["train_flops"] == pytest.approx(flops) and flops > 0
    # the pruned search stops at the first completed trial that reaches the target, or when out of budget
    spent = sum(t.user_attrs["train_flops"] for t in pruned_study.trials)
    assert row["used"]["train_flops"] == pytest.approx(spent)
    assert row["share"]["train_flops"] == pytest.approx(spent / flops)
    values = [t.values[0] if t.values and t.state.name == "COMPLETE" else None for t in pruned_study.trials]
    first = next((i for i, v in enumerate(values) if v is not None and v >= row["target"]), None)
    if row["reached"]:
        assert first == len(values) - 1  # charged up to and including that trial, not beyond
    else:
        assert first is None and (spent >= flops or len(values) == config.max_trials)
    assert result["mean_share"]["train_flops"] == row["share"]["train_flops"]
    assert any("random search best" in line for line in lines)
