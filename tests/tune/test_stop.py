"""A study stopped by SIGTERM or Ctrl-C: the running trial ends at a step boundary, is told FAIL and
marked interrupted, its run is ``interrupted`` in the run store, the study stops and says how to resume."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import deepatlas
from deepatlas import api
from deepatlas.tune.study import storage_url
from tests.conftest import tiny_recipe

SPACE = {"optim.lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True}}


@pytest.fixture(autouse=True)
def _default_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPATLAS_STUDY_STORAGE", raising=False)


def recipe(tmp_path: Path) -> str:
    path = tmp_path / "digits-stop.yaml"
    path.write_text(yaml.safe_dump({"extends": "quickstart", "search": {"space": SPACE}}))
    return str(path)


def tiny(**overrides: object) -> list[str]:
    return [o for o in tiny_recipe(**{"train.test": "false", **overrides}) if not o.startswith("optim.lr=")]


def trials_of(runs: Path, name: str = "digits-stop") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage_url(None, runs)).trials


def _wait_for_training(runs: Path, proc: subprocess.Popen[str], limit_s: float = 180.0) -> None:
    """Until the trial's run has logged a training step (log_every=5), i.e. the trainer is in its loop."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if any(p.stat().st_size > 0 for p in runs.glob("*/metrics.jsonl")):
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the trial did not start training in time")


def test_sigterm_while_a_trial_trains_stops_the_study_cleanly(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "deepatlas", "tune", recipe(tmp_path), *tiny(**{"train.epochs": 1000}),
               "--trials", "3", "--runs-dir", str(runs)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_training(runs, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    [trial] = trials_of(runs)
    assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"] == "SIGTERM"
    assert trial.user_attrs["error"] == "interrupted by SIGTERM"
    run = deepatlas.open_run(trial.user_attrs["run_id"], runs)
    assert run.status == "interrupted" and "SIGTERM" in run.summary["reason"]
    assert run.checkpoint("last").is_file()  # stopped at a step boundary, with a checkpoint
    assert run.summary["progress"]["step"] > 0 and run.summary["progress"]["epoch"] < 1000
    assert (f"tune: stopped by SIGTERM after 0 of 3 trials; trial 0 interrupted (run {run.id}); "
            f"resume with `deepatlas tune {recipe(tmp_path)}") in stderr
    assert f"--trials 3 --study digits-stop --runs-dir {runs}`" in stderr and "Traceback" not in stderr


def _signal_before(monkeypatch: pytest.MonkeyPatch, name: str, times: int = 1) -> None:
    """``api.<name>`` first sends this process SIGTERM ``times`` times (outside the trainer's handler)."""
    real = getattr(api, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        for _ in range(times):
            signal.raise_signal(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, name, wrapped)


def test_signal_while_a_trial_loads_data_stops_it_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    before = signal.getsignal(signal.SIGTERM)
    _signal_before(monkeypatch, "load_dataset")
    with caplog.at_level(logging.WARNING, logger="deepatlas"):
        result = deepatlas.tune(recipe(tmp_path), tiny(), trials=3, sampler="random", runs_dir=runs)
    assert signal.getsignal(signal.SIGTERM) is before  # the study's handler is gone again
    assert result.interrupted and [t["state"] for t in result.trials] == ["fail"]
    [trial] = trials_of(runs)
    assert trial.user_attrs["interrupted"] == "SIGTERM"
    run = deepatlas.open_run(trial.user_attrs["run_id"], runs)
    assert run.status == "interrupted" and run.summary["progress"]["step"] == 0  # no step trained
    assert any(m.startswith("tune: stopped by SIGTERM after 0 of 3 trials; trial 0 interrupted") for m in caplog.messages)


def test_second_signal_stops_at_once_and_leaves_no_running_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    _signal_before(monkeypatch, "load_dataset", times=2)
    result = deepatlas.tune(recipe(tmp_path), tiny(), trials=3, sampler="random", runs_dir=runs)
    assert result.interrupted
    [trial] = trials_of(runs)
    assert trial.state == TrialState.FAIL and trial.user_attrs["error"] == "interrupted by SIGTERM (stopped at once)"


def test_signal_after_a_trial_trained_keeps_it_and_starts_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    _signal_before(monkeypatch, "_evaluate")  # the test evaluation after training
    with caplog.at_level(logging.WARNING, logger="deepatlas"):
        result = deepatlas.tune(recipe(tmp_path), tiny(**{"train.test": "true", "train.epochs": 1}), trials=3,
                                sampler="random", runs_dir=runs)
    assert result.interrupted and [t["state"] for t in result.trials] == ["complete"]
    assert any("after 1 of 3 trials; no trial was running; resume with" in m and "--trials 2" in m
               for m in caplog.messages)


def test_sigkill_of_a_worker_fails_its_trial_and_its_run_on_the_next_tune(tmp_path: Path) -> None:
    """SIGKILL leaves the trial RUNNING and its run ``running``; the next ``tune`` fails both."""
    runs = tmp_path / "runs"  # 20 epochs: long enough to be killed inside, short enough to finish next time
    command = [sys.executable, "-m", "deepatlas", "tune", recipe(tmp_path), *tiny(**{"train.epochs": 20}),
               "--trials", "1", "--runs-dir", str(runs)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_training(runs, proc)
    proc.kill()
    proc.communicate(timeout=60)
    [killed] = trials_of(runs)
    assert killed.state == TrialState.RUNNING
    assert deepatlas.open_run(killed.user_attrs["run_id"], runs).status == "running"
    deepatlas.tune(recipe(tmp_path), tiny(**{"train.epochs": 20}), trials=1, runs_dir=runs, progress=False)
    first, second = trials_of(runs)
    assert first.state == TrialState.FAIL and second.state == TrialState.COMPLETE
    run = deepatlas.open_run(killed.user_attrs["run_id"], runs)
    assert run.status == "failed" and f"pid {proc.pid}" in run.summary["reason"] and run.summary["pid"] is None
