"""Adversarial losses, the gradient penalty on a known case, and two-optimizer training end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import deepatlas
from deepatlas.tasks.gan import LOSSES, discriminator_loss, generator_loss, gradient_penalty


def test_gradient_penalty_of_a_linear_critic_is_known() -> None:
    # D(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2 = (3 - 1)^2 = 4
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[3.0, 0.0, 0.0, 0.0]]))
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    torch.testing.assert_close(gradient_penalty(lambda x: critic(x).squeeze(1), real, fake), torch.tensor(4.0))


def test_losses_on_known_scores() -> None:
    real, fake = torch.tensor([0.0]), torch.tensor([0.0])
    assert math.isclose(discriminator_loss("minimax", real, fake).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(generator_loss("non-saturating", fake).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(generator_loss("minimax", fake).item(), -math.log(2), rel_tol=1e-6)
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-0.5, 1.0])
    assert discriminator_loss("wgan", real, fake).item() == pytest.approx(0.25 - 1.0)
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx((0 + 1) / 2 + (0.5 + 2) / 2)
    assert discriminator_loss("lsgan", real, fake).item() == pytest.approx(0.5 * ((1 + 1) / 2 + (0.25 + 1) / 2))
    assert generator_loss("lsgan", fake).item() == pytest.approx(0.5 * (2.25 + 0) / 2)


def gan_recipe(tmp_path: Path, loss: str, extra: str = "") -> str:
    recipe = tmp_path / f"gan-{loss}.yaml"
    recipe.write_text(
        "data: {name: digits, normalize: false, batch_size: 64}\n"
        "model: {name: dcgan, z_dim: 16, g_width: 8, d_width: 8" + (", d_batchnorm: false" if loss == "wgan-gp" else "") + "}\n"
        f"task: {{name: gan, loss: {loss}{extra}}}\noptim: {{name: adam, lr: 2.0e-4, betas: [0.5, 0.999]}}\n"
        "schedule: {name: constant}\ntrain: {epochs: 2, ema_decay: 0.9}\n"
    )
    return str(recipe)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_both_networks(loss: str, tmp_path: Path) -> None:
    run = deepatlas.train(gan_recipe(tmp_path, loss, ", n_critic: 2, g_lr_scale: 2.0"), progress=False)
    assert run.status == "completed"
    final = run.summary["final"]
    assert all(math.isfinite(final[f"val/{k}"]) for k in ("d_loss", "g_loss", "real_score", "fake_score"))
    epoch = run.metrics("epoch")[-1]
    assert math.isfinite(epoch["train/generator/loss"]) and math.isfinite(epoch["train/discriminator/loss"])


def test_two_time_scales_and_critic_steps_reach_the_optimizers() -> None:
    from deepatlas.api import build_task, load_recipe
    from deepatlas.engine.trainer import Trainer

    config = load_recipe("quickstart", ["task.name=gan", "task.loss=hinge", "task.n_critic=3", "task.g_lr_scale=4"])
    task = build_task(config, {})
    assert [task.phases(s) for s in range(3)] == [("discriminator",), ("discriminator",), ("discriminator", "generator")]
    model = deepatlas.create_model("dcgan", z_dim=8, g_width=4, d_width=4, input_size=8)
    trainer = Trainer(model, task, deepatlas.load_dataset("digits"), config)
    trainer.schedule.apply(trainer.optimizers.values(), 0)
    lrs = {name: opt.param_groups[0]["lr"] for name, opt in trainer.optimizers.items()}
    assert lrs["generator"] == pytest.approx(4 * lrs["discriminator"])


def test_wgan_clips_the_critic(tmp_path: Path) -> None:
    run = deepatlas.train(gan_recipe(tmp_path, "wgan", ", clip: 0.005"), progress=False)
    from deepatlas.api import build_model
    from deepatlas.engine.checkpoint import load_checkpoint

    model = build_model(run.config)
    model.load_state_dict(load_checkpoint(run.checkpoint("last"))["model"])
    # the last critic update may leave weights up to one Adam step outside; the clamp bounds the rest
    assert max(p.abs().max().item() for p in model.discriminator.parameters() if p.ndim > 1) < 0.005 + 1e-3


def test_sample_writes_a_png_grid_from_the_ema_generator(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from deepatlas.cli import app

    run = deepatlas.train(gan_recipe(tmp_path, "hinge"), ["model.conditional=true"], progress=False)
    result = CliRunner().invoke(app, ["sample", run.id, "--n", "20", "--seed", "3"])
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    from matplotlib import image

    grid = image.imread(path)
    assert path.parent == run.path and grid.shape[1] > grid.shape[0]  # 10 classes per row, 2 rows
    again = deepatlas.sample_images(run, 20, seed=3)
    assert (image.imread(again) == grid).all()  # the same seed gives the same images
    bad = CliRunner().invoke(app, ["sample", run.id, "--label", "12"])
    assert "--label: 12 is not a class" in str(bad.exception)  # main() turns it into one line and exit code 2
