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


@pytest.mark.parametrize(("name", "extra"), [("adamw", {"weight_decay": 0.05}), ("adam", {}), ("sgd", {"momentum": 0.9, "nesterov": True})])
def test_fused_update_equals_the_per_parameter_loop(name: str, extra: dict) -> None:
    torch.manual_seed(0)
    reference = create_model("mlp", width=16)
    fused_model = create_model("mlp", width=16)
    fused_model.load_state_dict(reference.state_dict())
    plain = build_optimizer(reference.parameters(), OptimConfig(name=name, lr=0.01, fused=False, **extra))
    fused = build_optimizer(fused_model.parameters(), OptimConfig(name=name, lr=0.01, fused=True, **extra))
    assert fused.defaults["fused"] and not plain.defaults.get("fused")
    assert build_optimizer(reference.parameters(), OptimConfig(name=name, lr=0.01, **extra)).defaults["fused"]  # the default
    for _ in range(5):
        x, y = torch.randn(32, 784), torch.randint(0, 10, (32,))
        for model, opt in ((reference, plain), (fused_model, fused)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for (key, a), b in zip(reference.state_dict().items(), fused_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)
        assert not torch.equal(a, create_model("mlp", width=16).state_dict()[key])


def test_fused_by_default_only_where_torch_fuses() -> None:
    w = [torch.nn.Parameter(torch.zeros(3))]
    assert not build_optimizer(w, OptimConfig(name="rmsprop", lr=0.01)).defaults.get("fused")
    assert not build_optimizer(w, OptimConfig(name="adamw", lr=0.01), fused_default=False).defaults.get("fused")  # FSDP
    assert not build_optimizer(w, OptimConfig(name="adamw", lr=0.01, fused=False)).defaults.get("fused")


def test_lbfgs_fits_a_linear_regression_to_the_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64) + 0.7 + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(5, 1).double()
    opt = build_optimizer(model.parameters(), OptimConfig(name="lbfgs", lr=1.0, lbfgs_max_iter=50))
    assert isinstance(opt, torch.optim.LBFGS) and opt.defaults["line_search_fn"] == "strong_wolfe"

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ((model(x).squeeze(1) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    design = torch.cat([x, torch.ones(200, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y[:, None]).solution.squeeze(1)
    torch.testing.assert_close(model.weight.detach().squeeze(0), solution[:5], atol=1e-5, rtol=0)
    torch.testing.assert_close(model.bias.detach(), solution[5:], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("overrides", "key"), [
    (["optim.name=lbfgs", "optim.weight_decay=0", "train.grad_accum=2"], "train.grad_accum"),
    (["optim.name=lbfgs", "optim.weight_decay=0", "train.grad_clip=1.0"], "train.grad_clip"),
    (["optim.name=lbfgs", "optim.weight_decay=0.01"], "optim.weight_decay"),
    (["optim.name=lbfgs", "optim.weight_decay=0", "optim.lr_groups={head: 0.1}"], "optim.lr_groups"),
    (["optim.name=rmsprop", "optim.fused=true"], "optim.fused"),
    (["optim.name=lbfgs", "optim.weight_decay=0", "optim.l1=0.01"], "optim.l1"),
])
def test_optimizer_options_that_do_not_combine_are_named(overrides: list[str], key: str) -> None:
    from deepatlas.config import load_recipe
    from deepatlas.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}: .*(set|remove|pick)"):
        load_recipe("quickstart", overrides)


def test_lbfgs_says_how_to_turn_off_a_recipe_s_weight_decay() -> None:
    from deepatlas.config import load_recipe
    from deepatlas.errors import ConfigError

    with pytest.raises(ConfigError, match=r"set optim[.]weight_decay=0 \(the recipe may set it\)"):
        load_recipe("quickstart", ["optim.name=lbfgs", "optim.weight_decay=0.01"])
