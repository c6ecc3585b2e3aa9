"""Engine options that change numerics or memory layout still train correctly."""

from __future__ import annotations

import pytest

import deepatlas
from tests.conftest import tiny_recipe


def test_bf16_autocast_trains_and_differs_from_fp32() -> None:
    fp32 = deepatlas.train("quickstart", tiny_recipe(), progress=False)
    bf16 = deepatlas.train("quickstart", tiny_recipe(**{"train.precision": "bf16"}), progress=False)
    assert bf16.status == "completed" and bf16.summary["final"]["val/accuracy"] > 0.8
    assert bf16.metrics("epoch")[0]["train/loss"] != fp32.metrics("epoch")[0]["train/loss"]  # autocast is on


def test_channels_last_cnn() -> None:
    # On tiny CPU convolutions channels_last is slower; it is an option for GPUs and larger models.
    run = deepatlas.train(
        "quickstart",
        tiny_recipe(**{"model.name": "lenet5", "train.channels_last": "true", "train.epochs": 1, "data.limit": 256}),
        progress=False,
    )
    assert run.status == "completed" and run.metrics("epoch")[0]["train/loss"] < 2.5


def test_fp16_on_the_cpu_is_refused_with_advice() -> None:
    with pytest.raises(deepatlas.ConfigError, match="on the CPU use bf16"):
        deepatlas.train("quickstart", tiny_recipe(**{"train.precision": "fp16", "train.device": "cpu"}), progress=False)


def test_missing_cuda_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(deepatlas.ConfigError, match="no CUDA device"):
        deepatlas.train("quickstart", tiny_recipe(**{"train.device": "cuda"}), progress=False)


def test_all_optimizers_and_schedules_train() -> None:
    for optim, schedule in (("sgd", "step"), ("rmsprop", "one-cycle"), ("adagrad", "multi-step")):
        extra = {"optim.name": optim, "schedule.name": schedule, "optim.lr": 0.01 if optim != "sgd" else 0.1}
        if schedule == "multi-step":
            extra["schedule.milestones"] = "[1]"
        if schedule == "step":
            extra["schedule.step_size"] = 1
        run = deepatlas.train("quickstart", tiny_recipe(**extra), progress=False)
        assert run.status == "completed", (optim, schedule)
        rows = run.metrics("epoch")
        assert rows[-1]["train/loss"] < rows[0]["train/loss"], (optim, schedule)


def test_torch_compile_trains() -> None:
    run = deepatlas.train("quickstart", tiny_recipe(**{"train.compile": "true", "train.epochs": 1}), progress=False)
    assert run.status == "completed" and run.summary["final"]["val/accuracy"] > 0.5
