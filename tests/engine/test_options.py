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


def test_auto_precision_picks_bf16_only_where_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from deepatlas.engine import device as dev

    cpu = torch.device("cpu")
    monkeypatch.setattr(dev, "fast_bf16", lambda device: True)
    assert dev.auto_precision(cpu, lambda: 2 * dev.BF16_MIN_FLOPS)[0] == "bf16"
    assert dev.auto_precision(cpu, lambda: dev.BF16_MIN_FLOPS / 2)[0] == "fp32"  # casts cost more than they save
    assert dev.auto_precision(cpu, lambda: None)[0] == "fp32"
    assert dev.auto_precision(cpu, lambda: 1e12, low_precision_ok=False)[0] == "fp32"  # a likelihood fit
    monkeypatch.setattr(dev, "fast_bf16", lambda device: False)
    precision, why = dev.auto_precision(cpu, lambda: 1e12)
    assert precision == "fp32" and "no fast bf16" in why


def test_auto_defaults_are_resolved_recorded_and_kept_on_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small model stays in float32 with the fused optimizer; a big enough one (here: the threshold lowered) trains
    under bf16 and channels_last, records it, and a resume continues in the checkpoint's precision."""
    import torch

    from deepatlas.engine import device as dev

    small = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), progress=False)
    assert small.summary["environment"]["precision"] == "fp32" and small.summary["environment"]["channels_last"] is False
    monkeypatch.setattr(dev, "fast_bf16", lambda device: True)
    monkeypatch.setattr(dev, "BF16_MIN_FLOPS", 0.0)
    seen: list = []

    class Look(deepatlas.engine.Callback):
        def on_fit_start(self, trainer) -> None:
            seen.append((trainer.dtype, trainer.channels_last, trainer.optimizers["main"].defaults.get("fused")))

    lenet = tiny_recipe(**{"model.name": "lenet5", "train.epochs": 1, "data.limit": 256})
    run = deepatlas.train("quickstart", lenet, progress=False, callbacks=[Look()])
    assert seen[-1] == (torch.bfloat16, True, True)
    assert run.summary["environment"]["precision"] == "bf16" and run.summary["environment"]["channels_last"] is True
    monkeypatch.setattr(dev, "BF16_MIN_FLOPS", 1e30)  # the same run resumed where bf16 would no longer be chosen
    resumed = deepatlas.resume(run.id, overrides=["train.epochs=2"], progress=False, callbacks=[Look()])
    assert seen[-1][0] == torch.bfloat16 and resumed.summary["environment"]["precision"] == "bf16"
