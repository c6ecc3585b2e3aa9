"""The VAE objective: the ELBO on a case computed by hand, the bounds' order, and training end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import deepatlas
from deepatlas.registry import create_model
from deepatlas.tasks.vae import VAETaskConfig, gaussian_kl, iwae_bound, kl_weight, log_likelihood


def test_kl_and_bernoulli_likelihood_by_hand() -> None:
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # 1/2 (mu^2 + sigma^2 - 1 - log sigma^2): (1 + 1 - 1 - 0)/2 = 0.5 and (0 + 4 - 1 - log 4)/2
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.tensor([[0.5, (3 - math.log(4.0)) / 2]]))
    x = torch.tensor([[[[1.0, 0.0]]]])
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])  # p = 1/2 and 3/4
    torch.testing.assert_close(log_likelihood(x, logits, None), torch.tensor([math.log(0.5) + math.log(0.25)]))
    mean, log_sigma = torch.tensor([[[[0.5, 0.0]]]]), torch.zeros(1, 1, 2)
    expected = -(0.5 * 0.5**2 + 0.5 * 0.0**2) - 2 * 0.5 * math.log(2 * math.pi)  # residuals 0.5 and 0
    torch.testing.assert_close(log_likelihood(x, mean, log_sigma), torch.tensor([expected]))


def test_kl_weight_schedules() -> None:
    linear = VAETaskConfig(anneal="linear", anneal_steps=100, beta=2.0)
    assert [kl_weight(linear, s) for s in (0, 50, 100, 500)] == [0.0, 1.0, 2.0, 2.0]
    cyc = VAETaskConfig(anneal="cyclical", anneal_steps=100, anneal_ratio=0.5)
    assert [kl_weight(cyc, s) for s in (0, 25, 50, 99, 100, 125)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    assert kl_weight(VAETaskConfig(beta=4.0), 7) == 4.0


def test_iwae_bound_is_at_least_the_elbo_on_average() -> None:
    torch.manual_seed(0)
    model = create_model("vae-mlp", hidden=32, latent_dim=4, input_size=8).eval()
    x = torch.rand(64, 1, 8, 8).round()
    with torch.no_grad():
        elbo = iwae_bound(model, x, None, 1).mean()  # k = 1 is the ELBO
        iwae = iwae_bound(model, x, None, 50).mean()
    assert iwae > elbo


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_training_raises_the_elbo_on_digits(arch: str, tmp_path: Path) -> None:
    recipe = tmp_path / "vae-digits.yaml"
    recipe.write_text(
        "data: {name: digits, normalize: false, batch_size: 64}\n"
        f"model: {{name: vae-{arch}, hidden: 32, latent_dim: 8}}\n"
        "task: {name: vae, iwae_k: 5}\noptim: {name: adam, lr: 3.0e-3}\nschedule: {name: constant}\n"
        "train: {epochs: 10, test: true}\n"
    )
    run = deepatlas.train(str(recipe), progress=False)
    history = [r["val/elbo"] for r in run.metrics("epoch")]
    assert run.status == "completed" and history[-1] > history[0] + 3  # nats per 8x8 image
    test = run.summary["eval"]["test"]
    assert test["iwae"] >= test["elbo"] - 0.5 and test["active_units"] >= 1


@pytest.mark.parametrize("recipe", ["vae-fashion-mnist", "dcgan-fashion-mnist"])
def test_generative_recipes_train_on_your_image_folder_and_evaluate(recipe: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from deepatlas.cli import app
    from tests.data.test_image_folder import make_folder

    folder = make_folder(tmp_path / "imgs", per_class=16, size=16)  # 3-channel 16x16 images, 3 classes
    runs = tmp_path / "runs"
    overrides = [f"data.path={folder}", "data.name=image-folder", "data.batch_size=8", "train.epochs=1", "data.hflip=false"]
    if recipe.startswith("vae"):
        overrides += ["task.iwae_k=2"]
    run = deepatlas.train(recipe, overrides, progress=False, runs_dir=runs)
    assert run.status == "completed"
    result = CliRunner().invoke(app, ["eval", run.id, "--runs-dir", str(runs), "--samples", "12"])
    assert result.exit_code == 0, result.output
    grid = run.path / "samples-eval-test.png"
    assert grid.is_file() and grid.stat().st_size > 0  # samples are drawn; FD needs 1x28x28 and is skipped
