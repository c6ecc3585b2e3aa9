"""Adversarial training: two optimizers, one loop (Goodfellow et al. 2014 and successors).

With D(x) the discriminator's raw score (a logit, or a critic value) and G(z) a sample:
- minimax (Goodfellow, eq. 1): D maximises log sigma(D(x)) + log(1 - sigma(D(G(z)))); G minimises
  log(1 - sigma(D(G(z)))) = -softplus(D(G(z))).
- non-saturating (Goodfellow, Sec. 3): G maximises log sigma(D(G(z))) instead, i.e. minimises softplus(-D(G(z))).
- lsgan (Mao et al. 2017): D: 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2; G: 1/2 (D(G(z)) - 1)^2.
- wgan (Arjovsky et al. 2017): critic: D(G(z)) - D(x), weights clipped to [-c, c]; G: -D(G(z)).
- wgan-gp (Gulrajani et al. 2017): wgan without clipping plus lambda E[(||grad_xhat D(xhat)||_2 - 1)^2]
  at xhat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per example.
- hinge (Lim & Ye 2017; Miyato et al. 2018): D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z)).
The discriminator steps on every batch, the generator on every ``n_critic``-th; two-time-scale
learning rates (Heusel et al. 2017) scale each optimizer's lr; EMA averages the generator.
Images arrive in [0, 1] (data.normalize=false) and are mapped to the generator's [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import TASKS
from ..schema import option
from .base import ImageGenerationTask, StepOutput

LOSSES = ("minimax", "non-saturating", "lsgan", "wgan", "wgan-gp", "hinge")


@dataclass(frozen=True)
class GANTaskConfig:
    loss: Literal["minimax", "non-saturating", "lsgan", "wgan", "wgan-gp", "hinge"] = option(
        "non-saturating", "adversarial loss"
    )
    n_critic: int = option(1, "discriminator steps per generator step", low=1)
    gp_weight: float = option(10.0, "wgan-gp: weight lambda of the gradient penalty", low=0.0)
    clip: float = option(0.01, "wgan: critic weights are clipped to [-clip, clip]", low=0.0)
    g_lr_scale: float = option(1.0, "generator lr = optim.lr x this (two time-scale update rule)", low=0.0)
    d_lr_scale: float = option(1.0, "discriminator lr = optim.lr x this", low=0.0)


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's (critic's) loss from scores on real and generated images."""
    if kind in ("minimax", "non-saturating"):
        return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log sigma(real) - log(1 - sigma(fake))
    if kind == "lsgan":
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())
    if kind in ("wgan", "wgan-gp"):
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(LOSSES)}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the discriminator's scores on its samples."""
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 - sigma(fake)): saturates when D wins
    if kind == "non-saturating":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1).pow(2).mean()
    if kind in ("wgan", "wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(LOSSES)}")


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[(||grad D(xhat)||_2 - 1)^2] at random interpolates xhat (Gulrajani et al. 2017, Algorithm 1)."""
    if eps is None:
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    xhat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(xhat, y) if y is not None else critic(xhat)
    (grad,) = torch.autograd.grad(scores.sum(), xhat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


class GANTask(ImageGenerationTask):
    """Alternating discriminator and generator updates; the model has ``generator`` and ``discriminator``."""

    monitor = ("g_loss", "min")  # a GAN's losses do not measure sample quality: recipes keep the last checkpoint
    # the scores read from the discriminator's side: real images high, generated ones low
    directions: ClassVar[Mapping[str, str]] = {"d_loss": "min", "g_loss": "min", "real_score": "max", "fake_score": "min"}

    def __init__(self, config: GANTaskConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        self.step = 0

    def parameters(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"discriminator": list(model.discriminator.parameters()), "generator": list(model.generator.parameters())}

    def lr_scales(self) -> dict[str, float]:
        return {"discriminator": self.config.d_lr_scale, "generator": self.config.g_lr_scale}

    def phases(self, step: int) -> tuple[str, ...]:
        self.step = step
        if (step + 1) % self.config.n_critic == 0:
            return ("discriminator", "generator")
        return ("discriminator",)

    def _inputs(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        x = batch[0] * 2 - 1
        y = batch[1] if model.config.conditional else None
        z = torch.randn(x.shape[0], model.config.z_dim, device=x.device)
        return x, y, z

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        c = self.config
        x, y, z = self._inputs(model, batch)
        if phase == "discriminator":
            if c.loss == "wgan":
                with torch.no_grad():  # clipping before each critic use = clipping after each critic update
                    for p in model.discriminator.parameters():
                        p.clamp_(-c.clip, c.clip)
            with torch.no_grad():
                fake = model.generator(z, y)
            real_score, fake_score = model.discriminator(x, y), model.discriminator(fake, y)
            loss = discriminator_loss(c.loss, real_score, fake_score)
            logs = {"loss": loss.detach(), "real_score": real_score.detach().mean(), "fake_score": fake_score.detach().mean()}
            if c.loss == "wgan-gp":
                gp = gradient_penalty(model.discriminator, x, fake, y)
                loss = loss + c.gp_weight * gp
                logs["gradient_penalty"] = gp.detach()
            return StepOutput(loss, logs)
        loss = generator_loss(c.loss, model.discriminator(model.generator(z, y), y))
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y, z = self._inputs(model, batch)
        fake = model.generator(z, y)
        real_score, fake_score = model.discriminator(x, y), model.discriminator(fake, y)
        n = torch.tensor(len(x))
        return {
            "n": n, "d_loss": discriminator_loss(self.config.loss, real_score, fake_score) * n,
            "g_loss": generator_loss(self.config.loss, fake_score) * n,
            "real_score": real_score.sum(), "fake_score": fake_score.sum(),
        }

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        n = float(totals["n"])
        return {k: float(totals[k]) / n for k in ("d_loss", "g_loss", "real_score", "fake_score")}

    def ema_target(self, model: nn.Module) -> nn.Module:
        return model.generator

    @torch.no_grad()
    def sample(
        self, model: nn.Module, n: int, labels: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None, steps: int | None = None,
    ) -> torch.Tensor:
        """G(z) for z ~ N(0, I), mapped from the generator's [-1, 1] to [0, 1]."""
        device = next(model.generator.parameters()).device
        z = torch.randn(n, model.config.z_dim, generator=generator).to(device)
        return (model.generator(z, labels) + 1) / 2


TASKS.register("gan", GANTask, GANTaskConfig(), family="gan", doc="adversarial training: six losses, n_critic, TTUR, EMA of G")
