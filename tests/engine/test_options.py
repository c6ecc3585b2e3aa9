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


def test_where_bf16_pays_depends_on_the_kind_of_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured (docs/BENCHMARKS.md, "When bf16 pays"): conv nets gain from about 0.5 GFLOP a step, GroupNorm conv nets
    and transformers and MLPs at least 192 wide from about 4, narrower ones from about 15; channels_last goes with bf16 for conv nets but
    not GroupNorm ones (the DDPM UNet loses its bf16 gain in NHWC) nor a ViT (a conv stem only)."""
    import torch

    from deepatlas.engine import device as dev
    from deepatlas.registry import create_model

    cpu = torch.device("cpu")
    monkeypatch.setattr(dev, "fast_bf16", lambda device: True)
    resnet = create_model("resnet20", num_classes=10, in_channels=3)
    unet = create_model("unet-fashion", width=8, groups=4)
    vit = create_model("vit-mini")
    narrow = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    wide = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.Linear(512, 10))
    assert dev.is_conv_net(resnet) and dev.is_conv_net(unet) and not dev.is_conv_net(vit) and not dev.is_conv_net(wide)
    assert dev.layer_width(narrow) == 8 and dev.layer_width(wide) == 512
    assert dev.cpu_bf16_min_flops(resnet)[0] == dev.CONV_BF16_MIN_FLOPS < dev.cpu_bf16_min_flops(unet)[0]
    assert dev.cpu_bf16_min_flops(wide)[0] == dev.WIDE_BF16_MIN_FLOPS < dev.BF16_MIN_FLOPS == dev.cpu_bf16_min_flops(narrow)[0]
    two_gflop, ten_gflop = 2e9, 1e10
    assert dev.auto_precision(cpu, lambda: two_gflop, model=resnet)[0] == "bf16"
    precision, why = dev.auto_precision(cpu, lambda: two_gflop, model=unet)
    assert precision == "fp32" and "below the 4 GFLOP where bf16 pays for a conv net with GroupNorm" in why
    assert dev.auto_precision(cpu, lambda: ten_gflop, model=unet)[0] == "bf16"
    precision, why = dev.auto_precision(cpu, lambda: 2e8, model=resnet)
    assert precision == "fp32" and "below the 0.5 GFLOP where bf16 pays for a conv net" in why
    assert dev.auto_precision(cpu, lambda: ten_gflop, model=wide)[0] == "bf16"
    precision, why = dev.auto_precision(cpu, lambda: two_gflop, model=wide)
    assert precision == "fp32" and "below the 4 GFLOP where bf16 pays for layers 512 wide" in why
    precision, why = dev.auto_precision(cpu, lambda: ten_gflop, model=narrow)
    assert precision == "fp32" and "below the 15 GFLOP where bf16 pays for layers 8 wide (below 192)" in why
    assert dev.auto_channels_last(resnet, torch.bfloat16) and not dev.auto_channels_last(resnet, None)
    assert not dev.auto_channels_last(unet, torch.bfloat16) and not dev.auto_channels_last(vit, torch.bfloat16)
    assert dev.auto_precision(torch.device("cuda"), lambda: 1e6, model=narrow)[0] == "bf16"  # the CPU rule only


def test_auto_defaults_are_resolved_recorded_and_kept_on_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small model stays in float32 with the fused optimizer; a big enough one (here: the threshold lowered) trains
    under bf16 and channels_last, records it, and a resume continues in the checkpoint's precision."""
    import torch

    from deepatlas.engine import device as dev

    small = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), progress=False)
    assert small.summary["environment"]["precision"] == "fp32" and small.summary["environment"]["channels_last"] is False
    monkeypatch.setattr(dev, "fast_bf16", lambda device: True)
    monkeypatch.setattr(dev, "CONV_BF16_MIN_FLOPS", 0.0)  # LeNet-5 is a conv net
    seen: list = []

    class Look(deepatlas.engine.Callback):
        def on_fit_start(self, trainer) -> None:
            seen.append((trainer.dtype, trainer.channels_last, trainer.optimizers["main"].defaults.get("fused")))

    lenet = tiny_recipe(**{"model.name": "lenet5", "train.epochs": 1, "data.limit": 256})
    run = deepatlas.train("quickstart", lenet, progress=False, callbacks=[Look()])
    assert seen[-1] == (torch.bfloat16, True, True)
    assert run.summary["environment"]["precision"] == "bf16" and run.summary["environment"]["channels_last"] is True
    monkeypatch.setattr(dev, "CONV_BF16_MIN_FLOPS", 1e30)  # the same run resumed where bf16 would no longer be chosen
    resumed = deepatlas.resume(run.id, overrides=["train.epochs=2"], progress=False, callbacks=[Look()])
    assert seen[-1][0] == torch.bfloat16 and resumed.summary["environment"]["precision"] == "bf16"
