"""Cross-validation of a tabular recipe with a baseline on the same folds (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from deepatlas.cli import app
from deepatlas.config import load_recipe
from deepatlas.crossval import crossval
from deepatlas.data import load_dataset

runner = CliRunner()
TINY = ["data.name=breast-cancer", "model.name=tabular-mlp", "model.width=16", "train.epochs=3", "train.checkpoint_every=0",
        "task.label_smoothing=0"]


def test_each_fold_is_the_test_split_once_and_the_baseline_sees_the_same_rows(tmp_path: Path) -> None:
    result = crossval("quickstart", TINY, folds=3, baselines=["hgb"], runs_dir=tmp_path)
    assert len(result.runs) == 3 and len(result.metrics["recipe"]) == 3 and len(result.metrics["hgb"]) == 3
    tests = []
    for fold in range(3):
        data = load_dataset(load_recipe("quickstart", [*TINY, "data.folds=3", f"data.fold={fold}"]).data)
        tests.append(data.split("test").fingerprint())
        assert result.metrics["hgb"][fold]["accuracy"] > 0.85  # boosting on breast cancer: ~0.96
    assert len(set(tests)) == 3
    summary = result.summary()
    accuracies = [m["accuracy"] for m in result.metrics["recipe"]]
    assert np.isclose(summary["recipe"]["accuracy"][0], np.mean(accuracies))
    assert np.isclose(summary["recipe"]["accuracy"][1], np.std(accuracies, ddof=1))


def test_the_command_prints_a_table_and_saves_the_result(tmp_path: Path) -> None:
    result = runner.invoke(app, ["crossval", "quickstart", *TINY, "-k", "2", "-b", "hgb", "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "mean +- std over 2 folds" in result.output and "hgb" in result.output
    saved = json.loads(next(tmp_path.glob("crossval-*.json")).read_text())
    assert saved["folds"] == 2 and set(saved["summary"]) == {"recipe", "hgb"}


def test_not_a_table_or_unknown_baseline_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["crossval", "quickstart", "-b", "hgbx", "--runs-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown baseline 'hgbx'" in str(result.exception)
    result = runner.invoke(app, ["crossval", "quickstart", "--runs-dir", str(tmp_path)])
    assert "is not a table" in str(result.exception)


def test_the_coverage_command_compares_with_mapie_on_the_same_splits(tmp_path: Path) -> None:
    result = runner.invoke(app, ["coverage", "quantile-engel", "train.epochs=3", "--splits", "2", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "deepatlas CQR" in result.output and "MAPIE split conformal" in result.output and "/2" in result.output
