"""Diffusion end to end on digits: the loss falls, sampling is seeded, guidance and both samplers run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import deepatlas
from deepatlas.api import build_task, load_trained_model


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("diffusion")
    recipe = folder / "diffusion-digits.yaml"
    recipe.write_text(
        "data: {name: digits, normalize: false, batch_size: 64}\n"
        "model: {name: unet-fashion, width: 16, groups: 4, multipliers: [1, 2], attention_at: [4], num_res_blocks: 1}\n"
        "task: {name: diffusion, num_steps: 100, sample_steps: 10}\noptim: {name: adam, lr: 2.0e-3}\n"
        "schedule: {name: constant}\ntrain: {epochs: 8, ema_decay: 0.9}\n"
    )
    return deepatlas.train(str(recipe), progress=False, runs_dir=folder / "runs")


def test_the_denoising_loss_falls(run) -> None:
    losses = [r["val/loss"] for r in run.metrics("epoch")]
    assert run.status == "completed" and losses[-1] < 0.6 * losses[0]


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sampling_is_deterministic_under_a_seed(run, sampler: str) -> None:
    config = run.config.override([f"task.sampler={sampler}"])
    task = build_task(config, {})
    model, *_ = load_trained_model(run, config, task, "last")
    y = torch.arange(6) % 10

    def draw(seed: int) -> torch.Tensor:
        return task.sample(model, 6, y, generator=torch.Generator().manual_seed(seed))

    a = draw(1)
    assert a.shape == (6, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, draw(1)) and not torch.equal(a, draw(2))


def test_guidance_changes_samples_and_the_cli_writes_a_grid(run) -> None:
    task = build_task(run.config, {})
    model, *_ = load_trained_model(run, run.config, task, "last")
    y = torch.arange(4)
    plain = build_task(run.config.override(["task.guidance=1.0"]), {}).sample(model, 4, y, generator=torch.Generator().manual_seed(0))
    guided = task.sample(model, 4, y, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(plain, guided)
    path = deepatlas.sample_images(run, 10, label=3, steps=5, seed=0)  # the Run object: no store lookup
    assert path.is_file() and Path(path).parent == run.path
