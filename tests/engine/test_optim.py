"""Optimizer factory: the right update rule, hyperparameters and weight-decay groups."""

from __future__ import annotations

import pytest
import torch

from deepatlas.config import OptimConfig
from deepatlas.engine.optim import build_optimizer
from deepatlas.registry import create_model


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
     ("rmsprop", torch.optim.RMSprop), ("adagrad", torch.optim.Adagrad)],
)
def test_each_optimizer_is_the_torch_one(name: str, cls: type) -> None:
    model = create_model("mlp", width=8)
    opt = build_optimizer(model.parameters(), OptimConfig(name=name, lr=0.05, weight_decay=0.01))
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["weight_decay"] == 0.01


def test_sgd_nesterov_and_momentum() -> None:
    opt = build_optimizer(create_model("mlp").parameters(), OptimConfig(name="sgd", momentum=0.8, nesterov=True))
    assert opt.param_groups[0]["momentum"] == 0.8 and opt.param_groups[0]["nesterov"]


def test_weight_decay_can_spare_norms_and_biases() -> None:
    model = create_model("resnet20")
    opt = build_optimizer(model.parameters(), OptimConfig(weight_decay=0.1, decay_norm_and_bias=False))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_one_sgd_step_follows_the_update_rule() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = build_optimizer([w], OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.5))
    w.grad = torch.tensor([0.2, 0.4])
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([1.0, -2.0]) - 0.1 * (torch.tensor([0.2, 0.4]) + 0.5 * torch.tensor([1.0, -2.0])))
