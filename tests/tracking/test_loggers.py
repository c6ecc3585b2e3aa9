"""Loggers read back with the real libraries: TensorBoard's event reader, MLflow's client on a SQLite store."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

import deepatlas
from deepatlas.errors import ConfigError
from tests.conftest import tiny_recipe


def test_tensorboard_and_csv_loggers_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = deepatlas.train("quickstart", tiny_recipe(**{"train.loggers": "[tensorboard,csv]", "train.test": True}),
                          runs_dir=tmp_path, progress=False)
    events = EventAccumulator(str(run.path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    epochs = run.metrics("epoch")
    val = events.Scalars("val/accuracy")
    assert [e.value for e in val] == pytest.approx([row["val/accuracy"] for row in epochs])
    assert [e.step for e in val] == [row["step"] for row in epochs]
    logs = run.metrics("log")
    assert [e.value for e in events.Scalars("log/loss")] == pytest.approx([row["loss"] for row in logs])
    assert "figures/curves" in tags["images"] and "config" in str(tags.get("tensors", [])) + str(tags)
    rows = list(csv.DictReader((run.path / "metrics.csv").open()))
    assert len(rows) == len(run.metrics()) and {"kind", "step", "val/accuracy", "loss"} <= set(rows[0])
    assert float([r for r in rows if r["kind"] == "epoch"][-1]["val/accuracy"]) == pytest.approx(epochs[-1]["val/accuracy"])


def test_mlflow_logger_and_export_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = deepatlas.train("quickstart", tiny_recipe(**{"train.loggers": "[mlflow]", "train.mlflow_uri": uri, "train.test": True}),
                          runs_dir=tmp_path / "runs", progress=False)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("quickstart")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.data.tags["deepatlas.run"] == run.id and found.info.status == "FINISHED"
    assert found.data.params["optim.lr"] == "0.01" and found.data.params["model.width"] == "64"
    history = client.get_metric_history(found.info.run_id, "val/accuracy")
    assert [m.value for m in history] == pytest.approx([row["val/accuracy"] for row in run.metrics("epoch")])
    assert found.data.metrics["test/accuracy"] == pytest.approx(run.summary["eval"]["test"]["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)} | {
        a.path for a in client.list_artifacts(found.info.run_id, "figures")}
    assert "config.yaml" in artifacts and "figures/curves.png" in artifacts

    from deepatlas.cli import app

    other = f"sqlite:///{tmp_path / 'exported.db'}"
    result = CliRunner().invoke(app, ["runs", "export", run.id, "--mlflow", other, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=other)
    (sent,) = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    again = client.get_metric_history(sent.info.run_id, "val/accuracy")
    assert [(m.step, m.value) for m in again] == [(m.step, m.value) for m in history]
    assert sent.data.metrics["test/accuracy"] == pytest.approx(found.data.metrics["test/accuracy"])


def test_a_resumed_run_continues_its_mlflow_run(tmp_path: Path) -> None:
    """Stopped in its second epoch, the MLflow run is KILLED; resumed, the same MLflow run goes on (its id is in
    the checkpoint) and ends FINISHED with every epoch's metrics once, at increasing steps."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tests.engine.test_trainer import StopAt

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = tiny_recipe(**{"train.loggers": "[mlflow]", "train.mlflow_uri": uri, "train.epochs": 3})
    stopped = deepatlas.train("quickstart", overrides, callbacks=[StopAt(9)], runs_dir=tmp_path / "runs", progress=False)
    assert stopped.status == "interrupted"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    (first,) = client.search_runs([experiment])
    assert first.info.status == "KILLED"
    resumed = deepatlas.resume(stopped.id, progress=False, runs_dir=tmp_path / "runs")
    assert resumed.status == "completed" and resumed.id == stopped.id
    (found,) = client.search_runs([experiment])  # still one MLflow run
    assert found.info.run_id == first.info.run_id and found.info.status == "FINISHED"
    history = client.get_metric_history(found.info.run_id, "val/accuracy")
    epochs = resumed.metrics("epoch")
    assert len(epochs) == 3
    assert [(m.step, m.value) for m in history] == [(row["step"], pytest.approx(row["val/accuracy"])) for row in epochs]


def test_unknown_logger_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.loggers: unknown logger 'tensorbord'.*Did you mean 'tensorboard'"):
        deepatlas.train("quickstart", tiny_recipe(**{"train.loggers": "[tensorbord]"}), runs_dir=tmp_path, progress=False)
