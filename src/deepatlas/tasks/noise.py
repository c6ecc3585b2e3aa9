"""The diffusion noise scheduler: the noise math of DDPM and DDIM as a plain object.

Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models" (equation numbers
below are theirs); Song, Meng & Ermon (2021), "Denoising Diffusion Implicit Models";
Nichol & Dhariwal (2021) for the cosine schedule; Salimans & Ho (2022) for v-prediction.

The network is a pure denoiser ``model(x_t, t) -> output``; what the output means
(``prediction``: the noise epsilon, the clean image x0, or the velocity
v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0) and every formula that turns it into a
less noisy image live here, so schedulers are swappable and testable on their own.

Notation: beta_t the variance schedule, alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s,
timesteps 0..T-1 (index 0 is the first noising step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ConfigError
from ..schema import option

Prediction = Literal["epsilon", "x0", "v"]


@dataclass(frozen=True)
class NoiseConfig:
    num_steps: int = option(1000, "diffusion steps T", low=1)
    schedule: Literal["linear", "cosine"] = option("linear", "beta schedule: linear (Ho et al.) or cosine (Nichol & Dhariwal)")
    beta_start: float = option(1e-4, "beta_1 of the linear schedule", low=0.0, high=1.0)
    beta_end: float = option(0.02, "beta_T of the linear schedule", low=0.0, high=1.0)
    prediction: Literal["epsilon", "x0", "v"] = option("epsilon", "what the network predicts: epsilon, x0 or v")
    clip_sample: bool = option(True, "clip the predicted x0 to [-clip_range, clip_range] when sampling")
    clip_range: float = option(1.0, "bound of the x0 clipping", low=0.0)

    def validate(self, path: str) -> None:
        if self.schedule == "linear" and self.beta_end < self.beta_start:
            raise ConfigError(f"{path}.beta_end: {self.beta_end} is below beta_start {self.beta_start}.")


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """abar(t) = cos^2(((t/T + s) / (1 + s)) pi/2); beta_t = 1 - abar(t+1)/abar(t), capped at ``max_beta``."""
    def abar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - abar((i + 1) / num_steps) / abar(i / num_steps), max_beta) for i in range(num_steps)]
    return torch.tensor(betas, dtype=torch.float32)


def _gather(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast against ``like`` (B, ...)."""
    if not torch.is_tensor(t):
        return values[t].to(like.device, like.dtype)
    out = values.to(like.device)[t.to(like.device).long()].to(like.dtype)
    return out.view(-1, *([1] * (like.dim() - 1)))


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, I) noise shaped like ``x``, drawn on the generator's device (so a CPU seed gives the same noise anywhere)."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


class NoiseScheduler:
    """Forward process, posterior, and the DDPM and DDIM reverse steps.

    >>> s = NoiseScheduler(NoiseConfig())
    >>> x_t = s.add_noise(x0, noise, t)                  # q(x_t | x_0), eq. (4)
    >>> x_prev = s.ddpm_step(model_out, t, x_t, generator=g)
    """

    def __init__(self, config: NoiseConfig | None = None) -> None:
        self.config = c = config or NoiseConfig()
        if c.schedule == "linear":
            self.betas = torch.linspace(c.beta_start, c.beta_end, c.num_steps, dtype=torch.float32)
        else:
            self.betas = cosine_betas(c.num_steps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self._abar_from_minus_one = torch.cat([torch.ones(1), self.alphas_cumprod])  # abar_{-1} = 1 first

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    # ----------------------------------------------------------------- the forward process

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (eq. 4 and the reparameterisation of Sec. 3.2)."""
        abar = _gather(self.alphas_cumprod, t, x0)
        return abar**0.5 * x0 + (1 - abar) ** 0.5 * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output at (x0, noise, t) for the configured ``prediction``."""
        p = self.config.prediction
        if p == "epsilon":
            return noise  # eq. (14): L_simple
        if p == "x0":
            return x0
        abar = _gather(self.alphas_cumprod, t, x0)
        return abar**0.5 * noise - (1 - abar) ** 0.5 * x0  # v

    # ----------------------------------------------------------------- the posterior

    def _abar_prev(self, prev: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """abar at ``prev``, with abar_{-1} = 1 (nothing left to denoise)."""
        return _gather(self._abar_from_minus_one, prev + 1, like)

    def posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int, prev: torch.Tensor | int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_prev | x_t, x0) (eq. 6-7; ``prev`` = t - 1 unless skipping steps)."""
        prev = t - 1 if prev is None else prev
        abar_t = _gather(self.alphas_cumprod, t, x_t)
        abar_prev = self._abar_prev(prev, x_t)
        alpha_t = abar_t / abar_prev  # the product of alphas between prev and t
        beta_t = 1 - alpha_t
        mean = (abar_prev**0.5 * beta_t / (1 - abar_t)) * x0 + (alpha_t**0.5 * (1 - abar_prev) / (1 - abar_t)) * x_t
        variance = ((1 - abar_prev) / (1 - abar_t) * beta_t).clamp_min(1e-20)  # beta-tilde_t
        return mean, variance

    # ----------------------------------------------------------------- reading the network's output

    def predict_x0_and_eps(
        self, model_output: torch.Tensor, t: torch.Tensor | int, x_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, epsilon) implied by the network output at x_t, unclipped."""
        abar = _gather(self.alphas_cumprod, t, x_t)
        a, b = abar**0.5, (1 - abar) ** 0.5
        p = self.config.prediction
        if p == "epsilon":
            return (x_t - b * model_output) / a, model_output
        if p == "x0":
            return model_output, (x_t - a * model_output) / b
        return a * x_t - b * model_output, a * model_output + b * x_t  # v

    def _clip(self, x0: torch.Tensor) -> torch.Tensor:
        c = self.config
        return x0.clamp(-c.clip_range, c.clip_range) if c.clip_sample else x0

    # ----------------------------------------------------------------- samplers

    def timesteps(self, num_inference_steps: int | None = None) -> list[int]:
        """Descending timesteps of a sampling run: all T for DDPM, every T/n-th ("leading") for fewer."""
        n = num_inference_steps or self.num_steps
        if not 1 <= n <= self.num_steps:
            raise ConfigError(f"steps: {n} is not in [1, {self.num_steps}] (the scheduler's num_steps).")
        ratio = self.num_steps // n
        return [i * ratio for i in range(n)][::-1]

    def ddpm_step(
        self, model_output: torch.Tensor, t: int, x_t: torch.Tensor, *, prev: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling (Algorithm 2): x_prev = posterior mean at the predicted x0 + sigma_t z, sigma_t^2 = beta-tilde_t."""
        prev = t - 1 if prev is None else prev
        x0, _ = self.predict_x0_and_eps(model_output, t, x_t)
        mean, variance = self.posterior(self._clip(x0), x_t, t, prev)
        if t > 0:
            mean = mean + variance**0.5 * _noise_like(x_t, generator)
        return mean

    def ddim_step(
        self, model_output: torch.Tensor, t: int, x_t: torch.Tensor, *, prev: int, eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """DDIM (Song et al. eq. 12): x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z.

        eta = 0 is deterministic; eta = 1 gives DDPM's variance."""
        x0, eps = self.predict_x0_and_eps(model_output, t, x_t)
        x0 = self._clip(x0)
        abar_t = _gather(self.alphas_cumprod, t, x_t)
        abar_prev = self._abar_prev(prev, x_t)
        sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)) ** 0.5
        x_prev = abar_prev**0.5 * x0 + (1 - abar_prev - sigma**2) ** 0.5 * eps
        if eta > 0:
            x_prev = x_prev + sigma * _noise_like(x_t, generator)
        return x_prev
