"""Training on several processes (torchrun, gloo on the CPU): the same run as one process, exact resume after the
launcher is killed, FSDP checkpoints gathered into the usual file, and the pieces that shard batches."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import deepatlas
from deepatlas.engine import distributed, load_checkpoint
from deepatlas.errors import ConfigError
from deepatlas.tracking import Run

# No dropout: random ops inside the model draw per rank, so only a model without them can match one process.
OVERRIDES = ["model.dropout=0", "model.width=128", "train.epochs=6", "train.log_every=5", "data.batch_size=64",
             "train.threads=1", "train.checkpoint_every=5", "optim.lr=0.01"]


def _cli(runs: Path, *args: str, wait: bool = True) -> Any:
    env = {**os.environ, "PYTHONPATH": str(Path(deepatlas.__file__).parents[1])}
    command = [sys.executable, "-m", "deepatlas", "train", *args, "--runs-dir", str(runs), "--quiet"]
    if not wait:
        return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _only_run(runs: Path) -> Any:
    (folder,) = [p.parent for p in runs.glob("*/config.yaml")]
    return Run(folder)


def _weights(run: Any, kind: str = "last") -> dict[str, torch.Tensor]:
    return load_checkpoint(run.checkpoint(kind))["model"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    runs = tmp_path_factory.mktemp("ddp")
    _cli(runs, "quickstart", *OVERRIDES, "--nproc", "2")
    return _only_run(runs)


def test_two_processes_train_as_one(two_processes: Any, tmp_path: Path) -> None:
    one = deepatlas.train("quickstart", OVERRIDES, runs_dir=tmp_path, progress=False)
    assert two_processes.status == "completed" and two_processes.summary["distributed"] == {"processes": 2, "strategy": "ddp"}
    a, b = one.metrics("epoch"), two_processes.metrics("epoch")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [20 * e for e in range(1, 7)]
    for key in ("train/loss", "val/nll", "val/accuracy"):  # losses averaged over ranks, validation over the whole split
        assert [r[key] for r in b] == pytest.approx([r[key] for r in a], rel=1e-4), key
    wa, wb = _weights(one), _weights(two_processes)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], atol=2e-5, rtol=1e-4)
    assert two_processes.summary["progress"]["samples"] == one.summary["progress"]["samples"]  # global samples


def test_resume_after_the_launcher_is_killed_is_exact(two_processes: Any, tmp_path: Path) -> None:
    """SIGKILL of torchrun and its workers (a power cut) after a checkpoint; resumed on 2 processes, the run ends
    with the weights of the run that never stopped, bit for bit."""
    proc = _cli(tmp_path, "quickstart", *OVERRIDES, "--nproc", "2", wait=False)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            found = list(tmp_path.glob("*/checkpoints/last.safetensors"))
            if found and proc.poll() is None:
                break
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = _only_run(tmp_path)
    # The workers die with the launcher: killed with it, or (PR_SET_PDEATHSIG) told to stop, which they do at the
    # step's end with a checkpoint. Either way the run is resumable once its processes are gone.
    pid, deadline = killed.summary.get("pid"), time.monotonic() + 20
    while pid and time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    subprocess.run(["pkill", "-9", "-f", str(tmp_path)], check=False)  # a worker still leaving (its store is gone)
    time.sleep(0.2)
    step = load_checkpoint(killed.checkpoint("last"))["state"]["step"]
    assert 0 < step < 120 and killed.status in ("running", "interrupted")
    _cli(tmp_path, "--resume", killed.id, "--nproc", "2")
    resumed = _only_run(tmp_path)
    assert resumed.status == "completed"
    wa, wb = _weights(two_processes), _weights(resumed)
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert [r["val/nll"] for r in resumed.metrics("epoch")][-1] == two_processes.metrics("epoch")[-1]["val/nll"]


def test_fsdp_checkpoints_are_gathered_into_one_file(tmp_path: Path) -> None:
    short = [*OVERRIDES, "train.epochs=2", "train.test=true"]
    _cli(tmp_path / "fsdp", "quickstart", *short, "train.strategy=fsdp", "--nproc", "2")
    run = _only_run(tmp_path / "fsdp")
    one = deepatlas.train("quickstart", short, runs_dir=tmp_path / "one", progress=False)
    assert run.status == "completed" and run.summary["distributed"]["strategy"] == "fsdp"
    weights, expected = _weights(run), _weights(one)
    assert weights.keys() == expected.keys()  # the one-process names and full shapes, not shards
    for key in weights:
        torch.testing.assert_close(weights[key], expected[key], atol=2e-5, rtol=1e-4)
    assert run.metrics("epoch")[-1]["val/nll"] == pytest.approx(one.metrics("epoch")[-1]["val/nll"], rel=1e-4)
    assert run.summary["eval"]["test"]["accuracy"] == pytest.approx(one.summary["eval"]["test"]["accuracy"])
    images = torch.zeros(2, 8, 8)
    assert deepatlas.load(run.id, runs_dir=tmp_path / "fsdp").predict(images) == deepatlas.load(one).predict(images)


# --------------------------------------------------------------------------- the pieces, in one process


@dataclass(frozen=True)
class Pair:
    x: torch.Tensor
    lengths: torch.Tensor
    vocab: torch.Tensor  # not per example: kept whole


def test_shard_batch_keeps_each_ranks_contiguous_slice() -> None:
    x = torch.arange(24).view(8, 3)
    batch = (x, {"y": torch.arange(8)}, Pair(x, torch.arange(8), torch.arange(5)))
    for rank in range(4):
        part = distributed.shard_batch(batch, 8, distributed.World(rank, 4))
        assert torch.equal(part[0], x[2 * rank:2 * rank + 2]) and torch.equal(part[1]["y"], torch.arange(2 * rank, 2 * rank + 2))
        assert torch.equal(part[2].lengths, torch.arange(2 * rank, 2 * rank + 2)) and torch.equal(part[2].vocab, torch.arange(5))
    with pytest.raises(ConfigError, match="data.batch_size: a batch of 8 examples does not split evenly over 3 processes"):
        distributed.shard_batch(batch, 8, distributed.World(0, 3))


def test_round_robin_deals_every_batch_once() -> None:
    dealt = [list(distributed.round_robin(iter(range(7)), distributed.World(r, 3))) for r in range(3)]
    assert dealt == [[0, 3, 6], [1, 4], [2, 5]]


def test_search_trials_each_train_on_two_processes(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"extends": "quickstart", "search": {"space": {
        "optim.lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True}}}}))
    env = {k: v for k, v in os.environ.items() if k != "DEEPATLAS_STUDY_STORAGE"}
    env["PYTHONPATH"] = str(Path(deepatlas.__file__).parents[1])
    done = subprocess.run([sys.executable, "-m", "deepatlas", "tune", str(path), "train.epochs=1", "train.threads=1",
                           "--trials", "2", "--sampler", "random", "--runs-dir", str(tmp_path / "runs"), "--quiet", "--nproc", "2"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [Run(p.parent) for p in (tmp_path / "runs").glob("*/config.yaml")]
    assert len(runs) == 2 and all(r.status == "completed" and r.summary["distributed"]["processes"] == 2 for r in runs)
    assert "best trial" in done.stdout


@pytest.mark.parametrize("fails", [False, True])
def test_a_session_that_finished_waits_for_every_rank_before_ending_its_group(monkeypatch: pytest.MonkeyPatch, fails: bool) -> None:
    """A rank that ends the group while a peer's last collective is in flight can abort at exit; a block that
    raised must not wait for peers that may never come (torchrun stops them)."""
    import torch.distributed as dist

    calls: list[str] = []
    joined = {"now": False}
    monkeypatch.setattr(distributed, "setup", lambda device_type, timeout_s: (joined.update(now=True), distributed.World(0, 2))[1])
    monkeypatch.setattr(distributed, "_joined", lambda: joined["now"])
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda *a, **k: calls.append("destroy"))
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext(), distributed.session("cpu", 60):
        if fails:
            raise RuntimeError("a trial failed")
    assert calls == (["destroy"] if fails else ["barrier", "destroy"])
