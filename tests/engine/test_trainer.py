"""The training loop: resume equality, failures, signals, early stopping, callbacks, phases."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.engine import Callback, Trainer, load_checkpoint
from deepatlas.tasks.base import StepOutput, Task
from tests.conftest import tiny_recipe

# Everything that consumes randomness or carries state across steps is switched on.
STATEFUL = tiny_recipe(**{
    "train.epochs": 3, "model.dropout": 0.2, "data.crop_padding": 1, "data.hflip": "true",
    "train.ema_decay": 0.9, "train.grad_accum": 2, "train.grad_clip": 1.0, "data.batch_size": 50,
    "schedule.name": "warmup-cosine", "schedule.warmup": 1, "optim.name": "adam",
})


def weights(run: Any, kind: str = "last") -> dict[str, Any]:
    return load_checkpoint(run.checkpoint(kind))


def epoch_rows(run: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "time"} for row in run.metrics("epoch")]


class StopAt(Callback):
    """Stops (or crashes) the run after optimizer step ``step``."""

    def __init__(self, step: int, how: str = "request") -> None:
        self.step, self.how = step, how

    def on_train_step_end(self, trainer: Trainer) -> None:
        if trainer.state.step != self.step:
            return
        if self.how == "request":
            trainer.request_stop("interrupted", "test")
        elif self.how == "signal":
            os.kill(os.getpid(), signal.SIGINT)
        elif self.how == "crash":
            raise RuntimeError("simulated crash (power cut)")


def assert_same_final_state(a: Any, b: Any) -> None:
    wa, wb = weights(a), weights(b)
    for part in ("model", "ema"):
        assert wa[part].keys() == wb[part].keys()
        for key in wa[part]:
            assert torch.equal(wa[part][key], wb[part][key]), f"{part}.{key} differs"
    assert wa["state"]["step"] == wb["state"]["step"]
    assert epoch_rows(a) == epoch_rows(b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return deepatlas.train("quickstart", STATEFUL, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


@pytest.mark.parametrize(("step", "how"), [(7, "request"), (20, "request"), (13, "signal")])
def test_resumed_run_is_bit_identical(uninterrupted: Any, step: int, how: str) -> None:
    # 12 optimizer steps per epoch: 7 and 13 stop mid-epoch, 20 in the second epoch.
    stopped = deepatlas.train("quickstart", STATEFUL, callbacks=[StopAt(step, how)], progress=False)
    assert stopped.status == "interrupted"
    assert weights(stopped)["state"]["step"] == step
    resumed = deepatlas.resume(stopped.id, progress=False)
    assert resumed.status == "completed"
    assert_same_final_state(uninterrupted, resumed)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_channels_last_run_with_fused_kernels_resumes_bit_identically(optimizer: str) -> None:
    """The checkpoint's moments load contiguous beside channels_last parameters; torch's fused kernels pair elements by
    memory position, so without engine.optim.match_state_layout the resumed steps scramble the moments."""
    conv = tiny_recipe(**{"model.name": "lenet5", "train.epochs": 2, "data.limit": 256, "data.batch_size": 32,
                          "train.channels_last": "true", "optim.fused": "true", "optim.name": optimizer,
                          "train.precision": "fp32"})
    full = deepatlas.train("quickstart", conv, progress=False)
    assert full.summary["environment"]["channels_last"] is True
    stopped = deepatlas.train("quickstart", conv, callbacks=[StopAt(5)], progress=False)
    resumed = deepatlas.resume(stopped.id, progress=False)
    a, b = weights(full)["model"], weights(resumed)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_matching_the_state_layout_keeps_a_fused_step_exact() -> None:
    from deepatlas.engine.optim import match_state_layout

    torch.manual_seed(0)
    w, g = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    ref = nn.Parameter(w.clone())
    plain = torch.optim.AdamW([ref], lr=0.1)
    for _ in range(2):
        ref.grad = g.clone()
        plain.step()
    p = nn.Parameter(w.clone().to(memory_format=torch.channels_last))
    first = torch.optim.AdamW([p], lr=0.1, fused=True)
    p.grad = g.clone().to(memory_format=torch.channels_last)
    first.step()
    saved = first.state_dict()
    saved["state"][0] = {k: v.contiguous() for k, v in saved["state"][0].items()}  # as safetensors gives them back
    resumed = torch.optim.AdamW([p], lr=0.1, fused=True)
    resumed.load_state_dict(saved)
    match_state_layout(resumed)
    assert resumed.state[p]["exp_avg"].stride() == p.stride()
    p.grad = g.clone().to(memory_format=torch.channels_last)
    resumed.step()
    torch.testing.assert_close(p.detach(), ref.detach(), rtol=0, atol=1e-6)


def test_resume_after_a_crash_between_checkpoints(uninterrupted: Any) -> None:
    overrides = [*STATEFUL, "train.checkpoint_every=5"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        deepatlas.train("quickstart", overrides, callbacks=[StopAt(17, "crash")], progress=False)
    crashed = deepatlas.open_run(deepatlas.list_runs()[0]["id"])
    assert crashed.status == "failed" and "simulated crash" in crashed.summary["reason"]
    assert weights(crashed)["state"]["step"] == 15  # the last periodic checkpoint
    resumed = deepatlas.resume(crashed.id, progress=False)
    assert_same_final_state(uninterrupted, resumed)
    logged_steps = [row["step"] for row in resumed.metrics("log")]
    assert logged_steps == sorted(set(logged_steps)), "lines written after the checkpoint are not repeated"


def test_completed_run_can_be_extended_but_not_changed(uninterrupted: Any) -> None:
    with pytest.raises(deepatlas.DeepAtlasError, match="already completed"):
        deepatlas.resume(uninterrupted.path, progress=False)
    with pytest.raises(deepatlas.ConfigError, match="cannot change when resuming"):
        deepatlas.resume(uninterrupted.path, ["optim.lr=1.0"], progress=False)


def test_loss_decreases_and_validation_is_good(uninterrupted: Any) -> None:
    rows = uninterrupted.metrics("epoch")
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rows[-1]["val/accuracy"] > 0.6  # chance is 0.1; 36 steps with flips and crops of 8x8 digits


def test_non_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint() -> None:
    run = deepatlas.train(
        "quickstart",
        tiny_recipe(**{"optim.name": "sgd", "optim.lr": 1e4, "optim.momentum": 0.0, "train.checkpoint_every": 1}),
        progress=False,
    )
    assert run.status == "failed"
    assert "training loss became" in run.summary["reason"] and "optim.lr" in run.summary["reason"]
    ckpt = weights(run)
    assert ckpt["state"]["step"] >= 1
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())


def test_early_stopping_and_best_checkpoint() -> None:
    run = deepatlas.train(
        "quickstart", tiny_recipe(**{"train.epochs": 6, "train.early_stopping": 1, "train.min_delta": 1.0}),
        progress=False,
    )
    summary = run.summary
    assert run.status == "completed" and summary["reason"].startswith("early stopping")
    assert summary["progress"]["epoch"] == 2
    assert summary["best"]["epoch"] == 1
    best = weights(run, "best")
    assert best["state"]["best_epoch"] == 1 and "optimizers" not in best


def test_monitor_that_does_not_exist_is_named() -> None:
    with pytest.raises(deepatlas.DeepAtlasError, match="val/acuracy.*val/accuracy"):
        deepatlas.train("quickstart", tiny_recipe(**{"train.monitor": "acuracy"}), progress=False)


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args: object.__getattribute__(self, "events").append(name)
        return object.__getattribute__(self, name)


def test_callback_events_and_pruning() -> None:
    recorder = Recorder()

    class Prune(Callback):
        def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
            trainer.request_stop("pruned", "pruned by test")

    run = deepatlas.train("quickstart", tiny_recipe(), callbacks=[recorder, Prune()], progress=False)
    assert run.status == "pruned" and run.summary["progress"]["epoch"] == 1
    ev = recorder.events
    assert ev[0] == "on_fit_start" and ev[1] == "on_epoch_start" and ev[-1] == "on_fit_end"
    assert ev.index("on_validation_end") < ev.index("on_epoch_end") < len(ev) - 1
    assert {"on_train_step_end", "on_log", "on_checkpoint"} <= set(ev)


def test_train_returns_a_complete_summary() -> None:
    run = deepatlas.train("quickstart", tiny_recipe(**{"train.test": "true"}), progress=False)
    s = run.summary
    assert s["params"]["total"] > 0 and s["flops"]["train_per_sample"] > 2 * s["flops"]["forward_per_sample"]
    assert s["time"]["wall_s"] > 0 and s["time"]["cpu_s"] > 0 and s["peak_memory_mb"] > 0
    energy = s["energy"]  # CPU-seconds x W/core (no RAPL in CI), and its CO2e at the grid intensity
    assert energy["method"] in ("estimate", "rapl") and energy["joules"] > 0
    assert energy["co2e_g"] == pytest.approx(energy["kwh"] * energy["assumptions"]["grid_g_co2e_per_kwh"])
    assert set(s["data"]["fingerprints"]) == {"train", "val", "test"}
    assert s["environment"]["torch"] == torch.__version__
    assert 0.0 <= s["eval"]["test"]["accuracy"] <= 1.0
    assert (run.path / "curves.png").is_file() and (run.path / "confusion-test.png").is_file()
    assert (run.path / "wrong-test.png").is_file()  # images: the most confidently wrong test examples
    again = deepatlas.train(run.config_path, progress=False)  # the saved config re-runs as is
    assert again.config == run.config
    assert again.summary["final"] == s["final"]  # and reproduces the run


# --------------------------------------------------------------------------- two optimizers


class TwoPhase(Task):
    """A GAN-shaped toy: two parameter sets stepped alternately by two optimizers."""

    def parameters(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"first": list(model["a"].parameters()), "second": list(model["b"].parameters())}

    def phases(self, step: int) -> tuple[str, ...]:
        return ("first", "second")

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        x, y = batch
        out = model["b"](model["a"](x.flatten(1)))
        loss = nn.functional.cross_entropy(out, y) * (1.0 if phase == "first" else 0.5)
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        return {"n": torch.tensor(1.0)}

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": 0.0}


def test_phases_step_their_own_optimizer_only() -> None:
    config = load_recipe("quickstart", tiny_recipe(**{"optim.name": "sgd", "optim.momentum": 0.0, "train.epochs": 1}))
    from deepatlas.data import load_dataset

    data = load_dataset(config.data)
    torch.manual_seed(0)
    model = nn.ModuleDict({"a": nn.Linear(64, 16), "b": nn.Linear(16, 10)})
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, TwoPhase(None, data.meta), data, config)
    assert trainer.fit().status == "completed"

    # The same alternating updates written out by hand.
    manual = nn.ModuleDict({"a": nn.Linear(64, 16), "b": nn.Linear(16, 10)})
    manual.load_state_dict(reference)
    wd = config.optim.weight_decay
    opt_a = torch.optim.SGD(manual["a"].parameters(), lr=config.optim.lr, weight_decay=wd)
    opt_b = torch.optim.SGD(manual["b"].parameters(), lr=config.optim.lr, weight_decay=wd)
    task = TwoPhase(None, data.meta)
    for step, batch in enumerate(data.train_batches(0, config.train.seed, torch.device("cpu"))):
        lr = trainer.schedule.lr(step)
        for phase, opt, frozen in (("first", opt_a, manual["b"]), ("second", opt_b, manual["a"])):
            for g in opt.param_groups:
                g["lr"] = lr
            frozen.requires_grad_(False)
            task.training_step(manual, batch, phase).loss.backward()
            frozen.requires_grad_(True)
            opt.step()
            opt.zero_grad()
    for key, value in manual.state_dict().items():
        assert torch.allclose(model.state_dict()[key], value, atol=1e-6), key
