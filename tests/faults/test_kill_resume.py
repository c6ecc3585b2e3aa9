"""SIGKILL at seeded random points, resume after each, and end bit-identical to a run never killed.

A real `deepatlas train` process checkpoints after every optimizer step (so many kills land
inside a checkpoint write), is SIGKILLed at a seeded random moment after it started training,
and is resumed with `deepatlas train --resume`, ten times; then it runs to the end. Its final
weights and metrics must equal, bit for bit, those of the same recipe trained without a stop.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import deepatlas
from deepatlas.engine import load_checkpoint

OVERRIDES = ["train.epochs=30", "train.checkpoint_every=1", "train.threads=1", "data.batch_size=64", "model.width=64",
             "optim.lr=0.01", "train.log_every=5"]
KILLS = 10


def _start(args: list[str], runs: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepatlas", *args, "--runs-dir", str(runs), "-q"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())


def _wait_for_training(runs: Path, proc: subprocess.Popen, since: float) -> bool:
    """True once the process wrote a checkpoint after ``since`` (it is training); False if it ended."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(runs.glob("*/checkpoints/last.safetensors"))
        if found and found[0].stat().st_mtime > since:
            return True
        time.sleep(0.02)
    return False


def test_ten_random_sigkills_then_resume_end_bit_identical(tmp_path: Path) -> None:
    rng = random.Random(1234)
    runs = tmp_path / "killed"
    kills = 0
    proc = _start(["train", "quickstart", *OVERRIDES], runs)
    while True:
        started = time.time()
        if _wait_for_training(runs, proc, started - 60 if kills == 0 else started):
            time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is None and kills < KILLS:
            proc.send_signal(signal.SIGKILL)  # no handler runs: a power cut, often mid-write
            proc.wait(timeout=60)
            kills += 1
        else:
            assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
            run_dir = next(p for p in runs.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
            if json.loads((run_dir / "summary.json").read_text())["status"] == "completed":
                break
        run_dir = next(p for p in runs.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
        proc = _start(["train", "--resume", run_dir.name], runs)
    assert kills == KILLS
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "a killed write left a temporary file"

    reference = deepatlas.train("quickstart", OVERRIDES, runs_dir=tmp_path / "clean", progress=False)
    mine, theirs = load_checkpoint(run_dir / "checkpoints" / "last.safetensors"), load_checkpoint(reference.checkpoint())
    assert mine["model"].keys() == theirs["model"].keys()
    assert all(torch.equal(mine["model"][k], theirs["model"][k]) for k in mine["model"])
    final = json.loads((run_dir / "summary.json").read_text())["final"]
    assert final == reference.summary["final"]  # the validation metrics too
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len({(e.get("kind"), e.get("step")) for e in epochs}) == len(epochs), "a metrics line repeats after a resume"


def test_resume_drops_a_torn_line_and_an_epoch_end_it_redoes(tmp_path: Path) -> None:
    """Killed after the end-of-epoch line but before the epoch's checkpoint: the resumed run validates
    that epoch again, so its old line goes; so does a line half written by the kill."""
    import types

    from deepatlas.tracking.recorder import RunRecorder

    run = deepatlas.train("quickstart", ["train.epochs=1", "train.log_every=5"], runs_dir=tmp_path, progress=False)
    metrics = run.path / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["kind"] == "epoch"
    metrics.write_text("\n".join([*lines, lines[-1][:20]]) + "\n")  # a torn line at the end
    steps = last["step"]
    state = types.SimpleNamespace(step=steps, epoch=0, batch_in_epoch=steps)  # the mid-epoch-end checkpoint
    recorder = RunRecorder(run)
    recorder._truncate(types.SimpleNamespace(state=state, num_batches=steps))
    assert metrics.read_text().splitlines() == lines[:-1]
    state.epoch, state.batch_in_epoch = 1, 0  # a checkpoint after the epoch ended: its line stays
    metrics.write_text("\n".join(lines) + "\n")
    recorder._truncate(types.SimpleNamespace(state=state, num_batches=steps))
    assert metrics.read_text().splitlines() == lines
