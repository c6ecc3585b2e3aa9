"""Faults in checkpoint files: tampered bytes, a full disk, temp files left by killed writes.

Each test starts from a copy of one tiny trained run (quickstart stopped at
max_steps=10, so ``--resume ... train.max_steps=N`` continues it) and breaks
its checkpoints the way a bad disk, a hand edit or a killed process would.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import deepatlas
from deepatlas.engine.checkpoint import load_checkpoint
from deepatlas.errors import CheckpointError, DeepAtlasError
from deepatlas.io import remove_stale_temps
from tests.conftest import tiny_recipe


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "deepatlas", *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run store holding one run with ``best`` and ``last`` checkpoints (trained once per module)."""
    runs = tmp_path_factory.mktemp("trained") / "runs"
    result = cli("train", "quickstart", *tiny_recipe(**{"train.max_steps": 10}), "--runs-dir", str(runs), "-q")
    assert result.returncode == 0, result.stderr
    return runs


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained run, for one test to break."""
    runs = tmp_path / "runs"
    shutil.copytree(trained, runs)
    return next(p for p in runs.iterdir() if p.is_dir() and (p / "summary.json").is_file())


def flip_tensor_bytes(path: Path, name: str) -> None:
    """Invert a few bytes inside tensor ``name``, leaving the header intact."""
    data = bytearray(path.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    start, end = json.loads(data[8:8 + n])[name]["data_offsets"]
    for i in range(8 + n + start, min(8 + n + start + 16, 8 + n + end)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_header_number(path: Path, key: str) -> None:
    """Change the first digit of ``key``'s value in the JSON skeleton (same length: the file stays readable)."""
    data = path.read_bytes()
    marker = f'\\"{key}\\": '.encode()
    at = data.index(marker) + len(marker)
    digit = data[at:at + 1]
    assert digit.isdigit(), data[at - 20:at + 20]
    path.write_bytes(data[:at] + (b"7" if digit != b"7" else b"3") + data[at + 1:])


def one_line_error(result: subprocess.CompletedProcess[str], path: Path) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(path) in lines[0] and "content hash mismatch" in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", ["best", "last"])
@pytest.mark.parametrize("part", ["tensor", "header"])
def test_tampered_checkpoint_is_refused_by_eval(run_dir: Path, kind: str, part: str) -> None:
    path = run_dir / "checkpoints" / f"{kind}.safetensors"
    if part == "tensor":
        flip_tensor_bytes(path, "model.head.weight")
    else:
        edit_header_number(path, "step")  # the training state in the JSON skeleton
    result = cli("eval", run_dir.name, "--checkpoint", kind, "--runs-dir", str(run_dir.parent))
    one_line_error(result, path)


@pytest.mark.parametrize("part", ["tensor", "header"])
def test_tampered_last_checkpoint_is_refused_by_resume(run_dir: Path, part: str) -> None:
    path = run_dir / "checkpoints" / "last.safetensors"
    if part == "tensor":
        flip_tensor_bytes(path, "optimizers.main.state.0.exp_avg_sq")  # optimizer state, not the weights
    else:
        edit_header_number(path, "step")
    before = path.read_bytes()
    result = cli("train", "--resume", run_dir.name, "train.max_steps=20", "--runs-dir", str(run_dir.parent), "-q")
    one_line_error(result, path)
    assert path.read_bytes() == before  # nothing trained on it, nothing overwrote it


def test_a_truncated_checkpoint_is_refused(run_dir: Path) -> None:
    path = run_dir / "checkpoints" / "last.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # what a copy cut short leaves
    with pytest.raises(CheckpointError, match="last.safetensors"):
        load_checkpoint(path)


def test_resume_removes_temp_files_of_killed_checkpoint_writes(run_dir: Path) -> None:
    folder = run_dir / "checkpoints"
    stale = [folder / ".last.json.k3j2h1.tmp", folder / ".last.safetensors.a8b7c6.tmp", folder / ".best.safetensors.x.tmp"]
    for tmp in stale:
        tmp.write_bytes(b"half a checkpoint")
    result = cli("train", "--resume", run_dir.name, "train.max_steps=20", "--runs-dir", str(run_dir.parent), "-q")
    assert result.returncode == 0, result.stderr
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
    assert load_checkpoint(folder / "last.safetensors")["state"]["step"] == 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: CI runs as root and must run this test; elsewhere it is skipped when it cannot mount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    why = None
    if os.geteuid() != 0:
        why = "not root"
    else:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
        why = done.stderr.strip() if done.returncode else None
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the full-disk test ({why}); CI must run it as root")
        pytest.skip(f"cannot mount a tmpfs for the full-disk test ({why})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_one_line_error_run_failed_previous_checkpoint_kept(run_dir: Path, small_disk: Path) -> None:
    runs = small_disk / "runs"
    shutil.copytree(run_dir.parent, runs)
    run = runs / run_dir.name
    last = run / "checkpoints" / "last.safetensors"
    size = last.stat().st_size
    # Fill the disk so that small files (the summary) still fit but no new checkpoint does.
    free = shutil.disk_usage(small_disk).free
    (small_disk / "ballast").write_bytes(b"\0" * max(free - size // 2, 0))
    with pytest.raises(DeepAtlasError) as caught:
        deepatlas.resume(run.name, ["train.max_steps=20"], runs_dir=runs, progress=False)
    message = str(caught.value)
    assert isinstance(caught.value, CheckpointError) and "\n" not in message
    assert "No space left on device" in message and ".safetensors" in message, message
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "CheckpointError" in summary["reason"]
    assert load_checkpoint(last)["state"]["step"] == 10  # the previous checkpoint, intact
    assert load_checkpoint(run / "checkpoints" / "best.safetensors")["model"]
    assert not [p for p in runs.rglob("*") if p.name.endswith(".tmp")]


def test_tampered_export_weights_are_refused(run_dir: Path, tmp_path: Path) -> None:
    folder = deepatlas.export(run_dir.name, tmp_path / "export", runs_dir=run_dir.parent)
    weights = Path(folder) / "model.safetensors"
    assert deepatlas.load(folder).model is not None  # the untouched export loads
    flip_tensor_bytes(weights, "head.weight")
    with pytest.raises(CheckpointError, match="model.safetensors: content hash mismatch"):
        deepatlas.load(folder)


WRITER = """
import sys, torch
from deepatlas.engine.checkpoint import save_checkpoint
step = 0
print("ready", flush=True)
while True:
    step += 1
    save_checkpoint(sys.argv[1], {"w": torch.full((2_000_000,), float(step)), "step": step})
"""


def test_sigkill_during_checkpoint_writes_never_leaves_a_half_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.safetensors"
    rng = random.Random(14)
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))  # a random point, most of it inside save_checkpoint
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if path.exists():  # the file under the real name is always a whole, verified checkpoint
            loaded = load_checkpoint(path)
            assert bool((loaded["w"] == loaded["step"]).all())  # tensors and skeleton of the same write
    assert path.exists()
    remove_stale_temps(path.parent)
    assert not list(path.parent.glob(".*.tmp"))
