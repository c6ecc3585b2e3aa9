"""The plain progress line says what the run will do: steps from max_steps, or epochs x steps."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from deepatlas.engine.progress import ProgressBar, plan_line


@pytest.mark.parametrize(("args", "line"), [
    ((200, 1, 250, 200), "training 200 steps (max_steps; an epoch is 250 steps)"),
    ((500, 2, 250, None), "training 500 steps (2 epochs x 250 steps)"),
    ((250, 1, 250, None), "training 250 steps (1 epoch x 250 steps)"),
    ((1, 1, 1, None), "training 1 step (1 epoch x 1 step)"),
    ((1, 1, 250, 1), "training 1 step (max_steps; an epoch is 250 steps)"),
])
def test_plan_line(args: tuple[int, int, int, int | None], line: str) -> None:
    assert plan_line(*args) == line


def test_plain_progress_logs_the_plan(caplog: pytest.LogCaptureFixture) -> None:
    trainer = SimpleNamespace(total_steps=200, epochs=1, steps_per_epoch=250, device="cpu",
                              train_config=SimpleNamespace(max_steps=200))
    with caplog.at_level(logging.INFO, logger="deepatlas.train"):
        ProgressBar(plain=True).on_fit_start(trainer)  # type: ignore[arg-type]
    assert caplog.messages == ["training 200 steps (max_steps; an epoch is 250 steps) on cpu"]
