"""The command line: the quickstart flow, one-line errors with exit code 2, runs and eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepatlas.cli import app
from tests.conftest import tiny_recipe

runner = CliRunner()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "deepatlas", *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )


def test_bad_key_is_one_line_exit_2_no_traceback() -> None:
    result = cli("train", "quickstart", "optim.lrr=0.1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()
    ] and "optim.lrr: unknown key" in result.stderr and "Did you mean 'lr'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = cli("--debug", "train", "quickstart", "train.epochs=ten")
    assert result.returncode != 0 and "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_unknown_run_is_a_clear_error() -> None:
    result = cli("eval", "no-such-run")
    assert result.returncode == 2 and "run 'no-such-run': not found" in result.stderr


def test_train_eval_runs_show_compare(tmp_path: Path) -> None:
    runs = str(tmp_path / "r")
    result = runner.invoke(app, ["train", "quickstart", *tiny_recipe(), "--runs-dir", runs, "--plain"])
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "saved to" in result.output
    listed = runner.invoke(app, ["runs", "--runs-dir", runs, "--json"])
    run_id = json.loads(listed.output)[0]["id"]
    evaluated = runner.invoke(app, ["eval", run_id, "--runs-dir", runs, "--json"])
    assert evaluated.exit_code == 0
    metrics = json.loads(evaluated.stdout)["metrics"]
    assert {"accuracy", "top5_accuracy", "macro_f1", "nll", "ece"} <= set(metrics)
    assert (Path(runs) / run_id / "confusion-test.png").is_file()
    shown = runner.invoke(app, ["runs", "show", run_id, "--runs-dir", runs])
    assert shown.exit_code == 0 and "test accuracy" in shown.output and "g CO2e" in shown.output
    rows = [line.split(None, 1) for line in shown.output.splitlines() if line.strip()]
    figures = [row[1].strip() for row in rows if row[0] == "figure"]
    assert str(Path(runs) / run_id / "confusion-test.png") in figures  # figures listed with their paths
    git_row = next(row[1] for row in rows if row[0] == "git")
    assert "{" not in git_row and ("clean" in git_row or "uncommitted" in git_row or "not a git" in git_row)
    second = runner.invoke(app, ["train", "quickstart", *tiny_recipe(**{"optim.lr": 0.02}), "--runs-dir", runs, "-q"])
    assert second.exit_code == 0
    both = json.loads(runner.invoke(app, ["runs", "--runs-dir", runs, "--json"]).output)
    compared = runner.invoke(app, ["runs", "compare", both[0]["id"], both[1]["id"], "--runs-dir", runs])
    assert compared.exit_code == 0 and "optim.lr" in compared.output


def test_interrupted_run_resumes_from_the_cli(tmp_path: Path) -> None:
    runs = tmp_path / "r"
    # max_steps stops mid-run as completed; extending it resumes the same run
    first = cli("train", "quickstart", *tiny_recipe(**{"train.max_steps": 10}), "--runs-dir", str(runs), "-q")
    assert first.returncode == 0, first.stderr
    run_id = next(p.name for p in runs.iterdir() if p.is_dir())
    again = cli("train", "--resume", run_id, "train.max_steps=30", "--runs-dir", str(runs), "-q")
    assert again.returncode == 0, again.stderr
    summary = json.loads((runs / run_id / "summary.json").read_text())
    assert summary["progress"]["step"] == 30 and summary["status"] == "completed"


def test_failed_run_exits_1() -> None:
    result = runner.invoke(app, ["train", "quickstart", *tiny_recipe(**{"optim.name": "sgd", "optim.lr": 1e4, "optim.momentum": 0}), "-q"])
    assert result.exit_code == 1 and "failed" in result.output


@pytest.mark.parametrize("command", [["models", "--family", "cnn"], ["datasets"], ["recipes"], ["config", "quickstart", "--docs"]])
def test_catalogue_commands(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output


def test_models_lists_parameter_counts() -> None:
    result = runner.invoke(app, ["models", "--family", "cnn"])
    assert "138,357,544" in result.output and "vgg16" in result.output


def test_config_prints_a_reloadable_resolved_recipe(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "quickstart", "optim.lr=0.5"])
    path = tmp_path / "c.yaml"
    path.write_text(result.output)
    from deepatlas.config import load_recipe

    assert load_recipe(path).optim.lr == 0.5


def test_sigterm_checkpoints_marks_interrupted_and_resumes(tmp_path: Path) -> None:
    import signal
    import time

    runs = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepatlas", "train", "quickstart", "train.epochs=200", "train.log_every=1",
         "--runs-dir", str(runs), "--plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until training is under way
        metrics = list(runs.glob("*/metrics.jsonl"))
        if metrics and metrics[0].stat().st_size > 0:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "deepatlas train --resume" in out
    run_dir = next(p for p in runs.iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["progress"]["step"] > 0
    assert (run_dir / "checkpoints" / "last.safetensors").is_file()
    resumed = cli("train", "--resume", run_dir.name, "train.epochs=3", "--runs-dir", str(runs), "-q")
    assert resumed.returncode == 0, resumed.stderr


def test_progress_bar_renders_on_a_terminal() -> None:

    import deepatlas
    from deepatlas.engine import ProgressBar

    bar = ProgressBar(plain=False)
    run = deepatlas.train("quickstart", tiny_recipe(), callbacks=[bar], progress=False)
    assert run.status == "completed" and bar._progress is None  # started and stopped cleanly


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(tmp_path: Path) -> None:
    import signal
    import time

    runs = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepatlas", "train", "quickstart", "train.epochs=200", "train.checkpoint_every=5",
         "--runs-dir", str(runs), "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy(),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(runs.glob("*/checkpoints/last.safetensors")):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # no handler runs: a power cut
    proc.wait(timeout=60)
    run_dir = next(p for p in runs.iterdir() if p.is_dir())
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    resumed = cli("train", "--resume", run_dir.name, "train.epochs=2", "--runs-dir", str(runs), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_version() -> None:
    import deepatlas

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"deepatlas {deepatlas.__version__}"


def test_recipes_show_whole_first_sentences() -> None:
    result = runner.invoke(app, ["recipes"])
    assert result.exit_code == 0
    flat = " ".join(result.output.replace("│", " ").split())  # a wrapped cell reads on
    assert "DCGAN (Radford et al. 2016) on Fashion-MNIST" in flat
    assert "Ho et al. 2020" in flat and not any(line.rstrip(" │").endswith("et al.") for line in result.output.splitlines())


def test_config_docs_shows_a_task_s_keys_before_it_can_be_built_and_escapes_examples() -> None:
    result = runner.invoke(app, ["config", "quickstart", "task.name=distillation", "--docs"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "warning: the task cannot be built yet: task.teacher" in result.output
    assert "temperature" in result.output and "[stem, stages.0.*]" in result.output  # not eaten as markup
    assert "1e-08" in result.output  # adam's eps, not 0.0000


def test_config_docs_resolves_the_model_input_from_the_data() -> None:
    result = runner.invoke(app, ["config", "quickstart", "--docs"])
    assert result.exit_code == 0, result.output
    rows = {cells[0]: cells[1] for line in result.output.splitlines()
            if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 4}
    assert rows["input_size"] == "8 (from the data)"  # digits are 8x8, the MLP preset says 28
    assert rows["num_classes"] == "10 (from the data)" and rows["depth"] == "2"
