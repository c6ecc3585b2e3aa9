"""Time and energy accounting as a stateful callback: saved in checkpoints, summed over sessions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from torch import nn

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.engine import Callback, Trainer, load_checkpoint, save_checkpoint
from deepatlas.engine.clock import ComputeClock
from tests.conftest import tiny_recipe
from tests.engine.test_trainer import StopAt, TwoPhase


class FakeMeter:
    """A RAPL meter whose counter advances 2 J per reading."""

    def __init__(self) -> None:
        self.joules = 0.0

    def update(self) -> float:
        self.joules += 2.0
        return self.joules


def test_clock_sums_sessions_and_restores_its_totals() -> None:
    clock = ComputeClock(energy="estimate")
    assert clock.rapl_j is None and clock.wall_s == 0.0
    clock.load_state_dict({"wall_s": 10.0, "cpu_s": 4.0, "rapl_j": None})
    clock.start()
    time.sleep(0.01)
    clock.stop()
    after = clock.state_dict()
    assert after["wall_s"] >= 10.01 and after["cpu_s"] >= 4.0
    time.sleep(0.01)
    assert clock.state_dict() == after  # stopped: the totals no longer grow

    metered = ComputeClock(energy="estimate")
    metered._meter = FakeMeter()  # type: ignore[assignment]
    metered.load_state_dict({"rapl_j": 5.0})
    metered.start()  # reads 2 J
    assert metered.rapl_j == pytest.approx(5.0 + 2.0)  # reads 4 J: 2 J in this session


def test_a_trainer_without_callbacks_still_records_time() -> None:
    config = load_recipe("quickstart", tiny_recipe(**{"optim.name": "sgd", "train.epochs": 1}))
    data = load_dataset(config.data)
    model = nn.ModuleDict({"a": nn.Linear(64, 16), "b": nn.Linear(16, 10)})
    trainer = Trainer(model, TwoPhase(None, data.meta), data, config)
    assert trainer.callbacks == [trainer.clock]
    trainer.fit()
    assert trainer.clock.wall_s > 0 and trainer.clock.cpu_s > 0


class Counter(Callback):
    """A callback with state: how many steps it saw, over every session."""

    name = "counter"

    def __init__(self) -> None:
        self.steps = 0

    def on_train_step_end(self, trainer: Trainer) -> None:
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]


def test_callback_state_is_checkpointed_and_time_accumulates_over_sessions() -> None:
    overrides = tiny_recipe(**{"train.epochs": 3})
    stopped = deepatlas.train("quickstart", overrides, callbacks=[StopAt(7), Counter()], progress=False)
    saved = load_checkpoint(stopped.checkpoint("last"))
    assert saved["callbacks"]["counter"] == {"steps": 7}
    first = saved["callbacks"]["clock"]
    assert first["wall_s"] > 0 and "wall_s" not in saved["state"]
    counter = Counter()
    resumed = deepatlas.resume(stopped.id, callbacks=[counter], progress=False)
    assert counter.steps == resumed.summary["progress"]["step"]  # 7 restored, the rest counted here
    assert resumed.summary["time"]["wall_s"] > first["wall_s"]
    assert resumed.summary["time"]["cpu_s"] > first["cpu_s"]


def test_a_checkpoint_with_the_old_clock_in_its_state_resumes(tmp_path: Path) -> None:
    stopped = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 3}), callbacks=[StopAt(7)], progress=False)
    path = stopped.checkpoint("last")
    old = load_checkpoint(path)
    del old["callbacks"]
    old["state"].update(wall_s=1000.0, cpu_s=500.0, rapl_j=None)  # the layout before ComputeClock
    save_checkpoint(path, old)
    resumed = deepatlas.resume(stopped.id, progress=False)
    assert resumed.status == "completed"
    assert resumed.summary["time"]["wall_s"] > 1000.0 and resumed.summary["time"]["cpu_s"] > 500.0
