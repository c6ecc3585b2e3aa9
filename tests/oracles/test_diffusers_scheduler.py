"""Our noise scheduler against Hugging Face diffusers' DDPMScheduler and DDIMScheduler (within 1e-6)."""

from __future__ import annotations

import pytest
import torch

from deepatlas.tasks.noise import NoiseConfig, NoiseScheduler

diffusers = pytest.importorskip("diffusers", reason="oracle tests need `pip install -e .[dev]`")

SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
PREDICTIONS = {"epsilon": "epsilon", "x0": "sample", "v": "v_prediction"}
TOL = dict(atol=1e-6, rtol=1e-6)


def pair(schedule: str, prediction: str, kind: str = "ddpm", clip: bool = True):
    ours = NoiseScheduler(NoiseConfig(schedule=schedule, prediction=prediction, clip_sample=clip))
    cls = diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler
    theirs = cls(
        num_train_timesteps=1000, beta_schedule=SCHEDULES[schedule], prediction_type=PREDICTIONS[prediction],
        clip_sample=clip,
    )
    return ours, theirs


def tensors(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=g)
    out = torch.randn(4, 1, 8, 8, generator=g)
    return x0, noise, out


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_betas_and_add_noise_equal_diffusers(schedule: str) -> None:
    ours, theirs = pair(schedule, "epsilon")
    torch.testing.assert_close(ours.alphas_cumprod, theirs.alphas_cumprod, **TOL)
    x0, noise, _ = tensors()
    t = torch.tensor([0, 17, 500, 999])
    torch.testing.assert_close(ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t), **TOL)


def test_v_target_equals_diffusers_velocity() -> None:
    ours, theirs = pair("cosine", "v")
    x0, noise, _ = tensors()
    t = torch.tensor([1, 250, 750, 999])
    torch.testing.assert_close(ours.target(x0, noise, t), theirs.get_velocity(x0, noise, t), **TOL)


@pytest.mark.parametrize("t", [1, 10, 400, 999])
def test_posterior_equals_the_ddpm_step_given_the_true_x0(t: int) -> None:
    """With x0-prediction and no clipping, a DDPM step's mean is the posterior mean and its variance beta-tilde."""
    ours, theirs = pair("linear", "x0", clip=False)
    x0, noise, _ = tensors()
    x_t = ours.add_noise(x0, noise, torch.full((4,), t))
    mean, variance = ours.posterior(x0, x_t, t)
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    expected = theirs.step(x0, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    torch.testing.assert_close(mean + variance**0.5 * z, expected, **TOL)
    torch.testing.assert_close(variance, theirs._get_variance(t), **TOL)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 3, 999])
def test_one_ddpm_step_equals_diffusers(prediction: str, schedule: str, t: int) -> None:
    ours, theirs = pair(schedule, prediction)
    x0, noise, out = tensors()
    x_t = ours.add_noise(x0, noise, torch.full((4,), t))
    got = ours.ddpm_step(out, t, x_t, generator=torch.Generator().manual_seed(3))
    expected = theirs.step(out, t, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
    torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_steps_equal_diffusers(prediction: str, eta: float) -> None:
    ours, theirs = pair("linear", prediction, kind="ddim")
    theirs.set_timesteps(50)
    assert ours.timesteps(50) == theirs.timesteps.tolist()
    x0, noise, out = tensors()
    steps = ours.timesteps(50)
    for t, prev in [(steps[0], steps[1]), (steps[25], steps[26]), (steps[-1], -1)]:
        x_t = ours.add_noise(x0, noise, torch.full((4,), t))
        got = ours.ddim_step(out, t, x_t, prev=prev, eta=eta, generator=torch.Generator().manual_seed(5))
        expected = theirs.step(out, t, x_t, eta=eta, generator=torch.Generator().manual_seed(5)).prev_sample
        torch.testing.assert_close(got, expected, **TOL)


def test_ddpm_sampling_is_deterministic_under_a_seed() -> None:
    ours = NoiseScheduler(NoiseConfig(num_steps=20))

    def sample(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(2, 1, 4, 4, generator=g)
        for t in ours.timesteps():
            x = ours.ddpm_step(torch.zeros_like(x), t, x, generator=g)
        return x

    torch.testing.assert_close(sample(1), sample(1), rtol=0, atol=0)
    assert not torch.equal(sample(1), sample(2))


def test_too_many_sampling_steps_is_a_clear_error() -> None:
    from deepatlas.errors import ConfigError

    with pytest.raises(ConfigError, match=r"steps: 2000 is not in \[1, 1000\]"):
        NoiseScheduler().timesteps(2000)
