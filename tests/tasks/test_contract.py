"""The Task contract, checked for every registered task: what each declares is complete and consistent."""

from __future__ import annotations

import pytest

from deepatlas.registry import TASKS
from deepatlas.tasks.base import CAPABILITIES, PREDICTIONS, ImageGenerationTask, Task


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_declares_its_metrics_capabilities_and_predictions(name: str) -> None:
    entry = TASKS.get(name)
    task: type[Task] = entry.factory
    directions = task.metric_directions(entry.config)
    assert directions and set(directions.values()) <= {"max", "min"}
    monitor, mode = task.monitor
    assert directions[monitor] == mode, "the default monitor must be a declared metric with its direction"
    assert set(task.capabilities) <= set(CAPABILITIES)
    assert (task.predicts is not None) == ("predict" in task.capabilities)
    assert task.predicts is None or task.predicts in PREDICTIONS
    assert ("sample" in task.capabilities) == issubclass(task, ImageGenerationTask)
    for capability in {"predict", "sample", "generate"} - set(task.capabilities):
        method = getattr(task, capability)
        assert method is getattr(Task, capability), f"{name} implements {capability} but does not declare it"


def test_metrics_a_run_reports_are_declared() -> None:
    import deepatlas
    from tests.conftest import tiny_recipe

    run = deepatlas.train("quickstart", tiny_recipe(**{"train.test": "true"}), progress=False)
    declared = TASKS.get("classification").factory.metric_directions(run.config.task.options)
    reported = {k.split("/", 1)[1] for k in run.summary["final"] if k.startswith("val/")}
    assert reported and reported <= set(declared)
    assert set(run.summary["eval"]["test"]) <= set(declared)
