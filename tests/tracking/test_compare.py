"""Comparing runs: differences in the recorded environment are flagged like data differences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepatlas.config import Config, load_recipe
from deepatlas.tracking.compare import compare


@dataclass
class FakeRun:
    """What :func:`compare` reads of a run: its id, resolved config and summary."""

    id: str
    config: Config
    summary: dict[str, Any]


def _run(run_id: str, **environment: Any) -> FakeRun:
    env = {"deepatlas": "0.1.0", "torch": "2.13.0+cpu", "numpy": "2.1.0", "python": "3.12.3", "device": "cpu",
           "device_name": "Xeon", "git": {"commit": "a" * 40, "dirty": False}, "hostname": "box", **environment}
    return FakeRun(run_id, load_recipe("quickstart"), {"status": "completed", "environment": env})


def test_different_library_versions_and_devices_are_warnings() -> None:
    result = compare([_run("a"), _run("b", torch="2.14.1+cu130", device="cuda:0", git={"commit": "b" * 40})])
    assert "the runs ran with different torch versions (a: 2.13.0+cpu, b: 2.14.1+cu130)" in result["warnings"]
    assert "the runs ran with different devices (a: cpu, b: cuda:0)" in result["warnings"]
    assert f"the runs ran with different git commits (a: {'a' * 10}, b: {'b' * 10})" in result["warnings"]
    assert len(result["warnings"]) == 3  # numpy, python, device name and the host are the same or not compared


def test_the_same_environment_or_an_unrecorded_one_is_no_warning() -> None:
    assert compare([_run("a"), _run("b", hostname="other")])["warnings"] == []
    unrecorded = FakeRun("c", load_recipe("quickstart"), {"status": "completed"})
    assert compare([_run("a"), unrecorded])["warnings"] == []
