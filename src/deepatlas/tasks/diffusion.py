"""Denoising diffusion (Ho et al. 2020): the training objective and sampling, glued to a scheduler.

Training (Algorithm 1): x0 from the data mapped to [-1, 1], t ~ U{0..T-1}, eps ~ N(0, I),
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, loss = || target - model(x_t, t, y) ||^2 with the
target eps (L_simple, eq. 14), x0 or v as the scheduler's ``prediction`` says.
Classifier-free guidance (Ho & Salimans 2022): the label is dropped with probability
``cond_drop`` in training; at sampling the output is u + s (c - u), u and c the
unconditional and conditional outputs and s the guidance scale (s = 1: plain conditional).
Sampling: DDPM ancestral (all T steps) or DDIM (``steps`` < T, deterministic at eta = 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import TASKS
from ..schema import option
from .base import ImageGenerationTask, StepOutput
from .noise import NoiseConfig, NoiseScheduler


@dataclass(frozen=True)
class DiffusionConfig:
    num_steps: int = option(1000, "diffusion steps T", low=1)
    schedule: Literal["linear", "cosine"] = option("linear", "beta schedule")
    prediction: Literal["epsilon", "x0", "v"] = option("epsilon", "what the network predicts")
    cond_drop: float = option(0.1, "probability of dropping the label in training (classifier-free guidance)", low=0.0, high=1.0)
    guidance: float = option(2.0, "guidance scale s at sampling (1: conditional only)", low=0.0)
    sampler: Literal["ddpm", "ddim"] = option("ddim", "sampler of `deepatlas sample` and evaluation")
    sample_steps: int = option(50, "DDIM steps (DDPM always takes num_steps)", low=1)
    eta: float = option(0.0, "DDIM stochasticity (0: deterministic, 1: DDPM-like)", low=0.0)

    def scheduler(self) -> NoiseScheduler:
        return NoiseScheduler(NoiseConfig(num_steps=self.num_steps, schedule=self.schedule, prediction=self.prediction))


class DiffusionTask(ImageGenerationTask):
    """Trains a denoiser ``model(x_t, t, y)``; ``sample`` runs the reverse process."""

    monitor = ("loss", "min")
    capabilities = frozenset({"sample", "sample-steps"})

    def __init__(self, config: DiffusionConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        self.scheduler = config.scheduler()

    def _loss(self, model: nn.Module, batch: Any, generator: torch.Generator | None) -> torch.Tensor:
        x0 = batch[0] * 2 - 1
        b = x0.shape[0]

        def rand(fn: Any, *shape: int, **kw: Any) -> torch.Tensor:
            return fn(*shape, generator=generator, **kw).to(x0.device)

        t = rand(torch.randint, 0, self.scheduler.num_steps, (b,))
        noise = rand(torch.randn, *x0.shape)
        y = None
        if model.config.conditional:
            y = batch[1]
            if model.training and self.config.cond_drop > 0:
                drop = rand(torch.rand, b) < self.config.cond_drop
                y = torch.where(drop, torch.full_like(y, model.config.num_classes), y)
        out = model(self.scheduler.add_noise(x0, noise, t), t, y)
        return F.mse_loss(out.float(), self.scheduler.target(x0, noise, t))

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        loss = self._loss(model, batch, None)
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        # the same (t, noise) for a batch at every evaluation: seeded by the batch's content
        seed = int((batch[0].flatten(1)[:, :64].sum(1) * 1000).long().sum()) % (2**31)
        n = torch.tensor(len(batch[0]))
        return {"n": n, "loss": self._loss(model, batch, torch.Generator().manual_seed(seed)) * n}

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": float(totals["loss"]) / float(totals["n"])}

    @torch.no_grad()
    def sample(
        self, model: nn.Module, n: int, labels: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None, steps: int | None = None,
    ) -> torch.Tensor:
        """n images in [0, 1] from the reverse process (DDIM with ``steps``, or DDPM's T steps)."""
        y = labels
        c, s = self.config, self.scheduler
        device = next(model.parameters()).device
        x = torch.randn(n, model.config.in_channels, model.config.input_size, model.config.input_size, generator=generator).to(device)
        ddim = c.sampler == "ddim" or (steps is not None and steps < s.num_steps)
        times = s.timesteps(steps or (c.sample_steps if ddim else s.num_steps))
        for i, t in enumerate(times):
            tt = torch.full((n,), t, device=device, dtype=torch.long)
            if y is not None and c.guidance != 1.0:  # conditional and unconditional in one batch
                null = torch.full_like(y, model.config.num_classes)
                cond, uncond = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null])).chunk(2)
                out = uncond + c.guidance * (cond - uncond)
            else:
                out = model(x, tt, y)
            prev = times[i + 1] if i + 1 < len(times) else -1
            if ddim:
                x = s.ddim_step(out, t, x, prev=prev, eta=c.eta, generator=generator)
            else:
                x = s.ddpm_step(out, t, x, prev=prev, generator=generator)
        return ((x + 1) / 2).clamp(0, 1)


TASKS.register(
    "diffusion", DiffusionTask, DiffusionConfig(), family="diffusion",
    doc="DDPM training (epsilon/x0/v), DDPM and DDIM sampling, classifier-free guidance",
)
