"""The default CPU thread count: the cores a process may use, the load, the work per batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepatlas.engine import device
from deepatlas.engine.device import (
    FLOPS_PER_THREAD,
    auto_threads,
    available_cores,
    batch_flops,
    busy_cores,
)


def cgroup(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "proc-cgroup").write_text(proc)
    return tmp_path, tmp_path / "proc-cgroup"


@pytest.fixture
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


@pytest.mark.usefixtures("eight_cores")
def test_cgroup_v2_quota_caps_the_affinity(tmp_path: Path) -> None:
    root, proc = cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "250000 100000\n"})
    assert available_cores(root, proc) == 2  # 2.5 cores: a third busy thread would be throttled
    root, proc = cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "max 100000\n"})
    assert available_cores(root, proc) == 8
    root, proc = cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "20000 100000\n"})
    assert available_cores(root, proc) == 1  # a fifth of a core still runs one thread


@pytest.mark.usefixtures("eight_cores")
def test_cgroup_v1_quota(tmp_path: Path) -> None:
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    root, proc = cgroup(tmp_path, "4:memory:/x\n2:cpu,cpuacct:/\n", files)
    assert available_cores(root, proc) == 3
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    root, proc = cgroup(tmp_path, "2:cpu,cpuacct:/\n", files)
    assert available_cores(root, proc) == 8


def test_affinity_limits_the_cores_without_a_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert available_cores(tmp_path / "none", tmp_path / "no-proc-file") == 1


def test_rule_small_work_gets_one_thread_large_work_the_idle_cores() -> None:
    assert auto_threads(8, 0.03e9) == 1  # the quickstart MLP: splitting its ops only adds waiting
    assert auto_threads(8, 3 * FLOPS_PER_THREAD) == 3
    assert auto_threads(8, 100 * FLOPS_PER_THREAD) == 8
    assert auto_threads(8, 100 * FLOPS_PER_THREAD, busy=5.2) == 3  # other processes hold 5 cores
    assert auto_threads(2, 100 * FLOPS_PER_THREAD, busy=1.0) == 1
    assert auto_threads(2, 100 * FLOPS_PER_THREAD, busy=7.0) == 1
    assert auto_threads(4, None) == 4  # unknown work: every idle core, as torch does


@pytest.mark.usefixtures("eight_cores")
def test_busy_cores_leaves_out_this_process_and_scales_to_its_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "loadavg").write_text("3.10 2.00 1.00 5/300 1234\n")
    for tid, state in (("1", "R"), ("2", "S"), ("3", "R")):
        (tmp_path / "task" / tid).mkdir(parents=True)
        (tmp_path / "task" / tid / "stat").write_text(f"{tid} (python (x)) {state} 1 2 3\n")
    monkeypatch.setattr(device.os, "cpu_count", lambda: 8)
    assert busy_cores(3, 0.0, tmp_path / "loadavg", tmp_path / "task") == 3.0  # 5 running, 2 of them ours
    monkeypatch.setattr(device.os, "cpu_count", lambda: 32)  # a container that sees the host's CPUs
    assert busy_cores(3, 0.0, tmp_path / "loadavg", tmp_path / "task") == pytest.approx(3 * 8 / 32)
    assert busy_cores(1, 0.0, tmp_path / "missing", tmp_path / "task") == 0.0


def test_batch_flops_counts_without_computing_or_changing_state() -> None:
    from deepatlas.tasks.base import StepOutput

    class Task:
        def phases(self, step: int) -> tuple[str, ...]:
            return ("main",)

        def training_step(self, model: torch.nn.Module, batch: torch.Tensor, phase: str) -> StepOutput:
            loss = torch.nn.functional.dropout(model(batch), 0.5).sum()
            return StepOutput(loss, {})

    model = torch.nn.Linear(64, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = torch.randn(16, 64)
    rng = torch.get_rng_state()
    flops = batch_flops(model, Task(), batch)
    assert flops == 2 * (2 * 16 * 64 * 32)  # the forward product and the weights' gradient (the input needs none)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.weight.device.type == "cpu" and model.weight.grad is None


def test_explicit_threads_override_the_rule() -> None:
    previous = torch.get_num_threads()
    try:
        assert device.configure_threads(1, False, lambda: pytest.fail("the work is not counted")) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
