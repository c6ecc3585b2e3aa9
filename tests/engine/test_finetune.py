"""Fine-tuning controls: frozen parameters, discriminative learning rates, gradual unfreezing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn

import deepatlas
from deepatlas.build import build
from deepatlas.config import OptimConfig, load_recipe
from deepatlas.data import load_dataset
from deepatlas.engine import Callback, Trainer, load_checkpoint
from deepatlas.engine.optim import FineTuning, build_optimizer
from deepatlas.registry import create_model
from deepatlas.tasks.base import StepOutput, Task
from tests.conftest import tiny_recipe
from tests.engine.test_trainer import StopAt

# The quickstart MLP: body.0 (first hidden layer), body.4 (second; dropout at body.3), head.
TINY = tiny_recipe(**{"train.threads": 1, "schedule.name": "constant"})


def trainer_for(*overrides: str, callbacks: tuple[Callback, ...] = ()) -> tuple[Trainer, dict[str, torch.Tensor]]:
    config = load_recipe("quickstart", [*TINY, *overrides])
    data = load_dataset(config.data)
    config, task, model = build(config, data.meta)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    return Trainer(model, task, data, config, callbacks=callbacks), initial


def test_frozen_parameters_do_not_change_and_are_in_no_optimizer() -> None:
    trainer, initial = trainer_for("optim.freeze=[body.0, head.bias]")
    assert trainer.fit().status == "completed"
    after = trainer.model.state_dict()
    for key in ("body.0.weight", "body.0.bias", "head.bias"):
        assert torch.equal(after[key], initial[key]), key
    assert not torch.equal(after["head.weight"], initial["head.weight"])
    assert not torch.equal(after["body.4.weight"], initial["body.4.weight"])
    in_optimizer = {id(p) for group in trainer.optimizers["main"].param_groups for p in group["params"]}
    assert id(trainer.model.body[0].weight) not in in_optimizer and id(trainer.model.head.weight) in in_optimizer


def test_discriminative_learning_rates_are_in_the_optimizer_groups() -> None:
    trainer, _ = trainer_for("optim.lr_groups={head: 1.0, 'body.*': 0.1}", "optim.lr=0.01")
    trainer.schedule.apply(trainer.optimizers.values(), 0)
    lrs = {}
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    for group in trainer.optimizers["main"].param_groups:
        for p in group["params"]:
            lrs[names[id(p)]] = group["lr"]
    assert lrs["head.weight"] == pytest.approx(0.01) and lrs["body.0.weight"] == pytest.approx(0.001)
    assert lrs["body.4.bias"] == pytest.approx(0.001)


def test_lr_groups_combine_with_the_weight_decay_groups() -> None:
    model = create_model("mlp", width=8)
    names = {id(p): n for n, p in model.named_parameters()}
    config = OptimConfig(weight_decay=0.1, decay_norm_and_bias=False, lr_groups={"head": 2.0})
    groups = build_optimizer(model.parameters(), config, names).param_groups
    summary = sorted((g.get("lr_scale", 1.0), g["weight_decay"], sorted(names[id(p)] for p in g["params"])) for g in groups)
    assert summary == [
        (1.0, 0.0, ["body.0.bias", "body.3.bias"]), (1.0, 0.1, ["body.0.weight", "body.3.weight"]),
        (2.0, 0.0, ["head.bias"]), (2.0, 0.1, ["head.weight"]),
    ]


@pytest.mark.parametrize("key", ["optim.freeze=[encoder.*]", "optim.lr_groups={bdy: 0.1}", "optim.unfreeze=[head, tail]"])
def test_a_pattern_that_matches_nothing_fails_before_the_run_with_the_key(key: str) -> None:
    name = key.split("=")[0]
    with pytest.raises(deepatlas.ConfigError, match=rf"{name.replace('.', '[.]')}.*matches no parameter.*(body|head)"):
        deepatlas.train("quickstart", [*TINY, key], progress=False)
    assert deepatlas.list_runs() == []
    with pytest.raises(deepatlas.ConfigError, match="Did you mean 'body'"):
        FineTuning(create_model("mlp"), OptimConfig(freeze=("bdy",)))


def test_freezing_every_parameter_fails_before_the_run_with_a_count() -> None:
    with pytest.raises(deepatlas.ConfigError, match=r"optim[.]freeze: the patterns \['body', 'head'\] freeze all [\d,]+ parameters"):
        deepatlas.train("quickstart", [*TINY, "optim.freeze=[body, head]"], progress=False)
    assert deepatlas.list_runs() == []


class Snapshots(Callback):
    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})


def test_gradual_unfreezing_trains_one_more_group_each_epoch_from_the_top() -> None:
    snapshots = Snapshots()
    trainer, initial = trainer_for("optim.unfreeze=[head, body.4, body.0]", "train.epochs=3", callbacks=(snapshots,))
    assert trainer.fit().status == "completed"
    first, second, third = snapshots.weights
    changed = [{k.rsplit(".", 1)[0] for k in initial if not torch.equal(w[k], ref[k])}
               for w, ref in ((first, initial), (second, first), (third, second))]
    assert changed == [{"head"}, {"head", "body.4"}, {"head", "body.4", "body.0"}]


def test_gradual_unfreezing_resumes_exactly() -> None:
    recipe = [*TINY, "optim.unfreeze=[head, body.4]", "train.epochs=2", "data.batch_size=50"]
    whole = deepatlas.train("quickstart", recipe, progress=False)
    stopped = deepatlas.train("quickstart", recipe, callbacks=[StopAt(30)], progress=False)  # 26 steps an epoch
    resumed = deepatlas.resume(stopped.id, progress=False)
    a, b = (load_checkpoint(r.checkpoint("last"))["model"] for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


class ZeroLoss(Task):
    """A loss with zero gradient: only the L1 penalty moves the weights."""

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        loss = sum((p * 0).sum() for p in model.parameters())
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        return {"n": torch.tensor(1.0)}

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": 0.0}


def test_l1_moves_each_weight_by_lr_l1_sign_and_spares_biases() -> None:
    config = load_recipe("quickstart", [*TINY, "optim.name=sgd", "optim.momentum=0", "optim.weight_decay=0",
                                        "optim.l1=0.001", "optim.lr=0.01", "train.epochs=1"])
    data = load_dataset(config.data)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, ZeroLoss(None, data.meta), data, config)
    trainer.fit()
    steps = trainer.state.step
    w0 = initial["1.weight"]
    expected = w0 - steps * 0.01 * 0.001 * w0.sign()
    far = w0.abs() > steps * 0.01 * 0.001  # weights that did not reach zero on the way
    torch.testing.assert_close(model[1].weight.detach()[far], expected[far])
    assert torch.equal(model[1].bias.detach(), initial["1.bias"])
