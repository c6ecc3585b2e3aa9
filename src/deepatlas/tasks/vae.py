"""Training a VAE: the evidence lower bound and the importance-weighted bound.

ELBO (Kingma & Welling 2013, eq. 10; the survey seed's eq. 6):
    L(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)),
with the Gaussian KL in closed form (their Appendix B):
    -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
Variants: beta-VAE (Higgins et al. 2017) weights the KL by beta; KL annealing ramps that
weight from 0 (linearly, Bowman et al. 2016, or in cycles, Fu et al. 2019); free bits
(Kingma et al. 2016) stop pushing a latent dimension's batch-mean KL below lambda nats.
The importance-weighted bound (Burda et al. 2016) with k samples,
    log p(x) >= E[log 1/k sum_i p(x, z_i) / q(z_i|x)],
tightens towards log p(x) as k grows: it is the test log-likelihood we report (nats).
Pixels must lie in [0, 1] for the Bernoulli likelihood: recipes set data.normalize=false.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import TASKS
from ..schema import option
from .base import Evaluation, ImageGenerationTask, StepOutput

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class VAETaskConfig:
    beta: float = option(1.0, "weight of the KL term (1: the ELBO; >1: beta-VAE)", low=0.0)
    anneal: Literal["none", "linear", "cyclical"] = option("none", "KL weight schedule over optimizer steps")
    anneal_steps: int = option(2000, "linear: steps to ramp 0 -> beta; cyclical: steps per cycle", low=1)
    anneal_ratio: float = option(0.5, "cyclical: fraction of each cycle spent ramping up", low=0.0, high=1.0)
    free_bits: float = option(0.0, "free bits lambda per latent dimension, nats (0: off)", low=0.0)
    iwae_k: int = option(0, "importance samples of the test log-likelihood bound (0: ELBO only)", low=0)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, (B, latent)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_likelihood(x: torch.Tensor, out: torch.Tensor, log_sigma: torch.Tensor | None) -> torch.Tensor:
    """log p(x|z) summed over pixels, (B,): Bernoulli logits when ``log_sigma`` is None, else Gaussian."""
    if log_sigma is None:
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
    nll = 0.5 * ((x - out) / log_sigma.exp()).pow(2) + log_sigma + 0.5 * LOG_2PI
    return -nll.flatten(1).sum(1)


def kl_weight(config: VAETaskConfig, step: int) -> float:
    """The KL weight at optimizer step ``step``."""
    if config.anneal == "none":
        return config.beta
    if config.anneal == "linear":
        return config.beta * min(1.0, step / config.anneal_steps)
    ramp = max(config.anneal_ratio * config.anneal_steps, 1.0)
    return config.beta * min(1.0, (step % config.anneal_steps) / ramp)


def iwae_bound(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, k: int) -> torch.Tensor:
    """log 1/k sum_i p(x|z_i) p(z_i) / q(z_i|x) per example (B,), in nats."""
    mu, logvar = model.encode(x, y)
    std = torch.exp(0.5 * logvar)
    terms = []
    for _ in range(k):
        eps = torch.randn_like(mu)
        z = mu + std * eps
        log_q = (-0.5 * (eps.pow(2) + logvar + LOG_2PI)).sum(1)
        log_prior = (-0.5 * (z.pow(2) + LOG_2PI)).sum(1)
        terms.append(log_likelihood(x, model.decode(z, y), model.log_sigma) + log_prior - log_q)
    return torch.logsumexp(torch.stack(terms), dim=0) - math.log(k)


class VAETask(ImageGenerationTask):
    """Maximises the (weighted) ELBO; reports ELBO, reconstruction, KL and active units (nats per image)."""

    monitor = ("elbo", "max")
    directions: ClassVar[Mapping[str, str]] = {"elbo": "max", "reconstruction": "max", "kl": "min", "active_units": "max", "iwae": "max"}

    def __init__(self, config: VAETaskConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        self.step = 0

    def phases(self, step: int) -> tuple[str, ...]:
        self.step = step  # the KL weight follows the optimizer step (restored on resume)
        return ("main",)

    def _labels(self, model: nn.Module, batch: Any) -> torch.Tensor | None:
        return batch[1] if model.config.conditional else None

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        x, y = batch[0], self._labels(model, batch)
        out, mu, logvar = model(x, y)
        rec = log_likelihood(x, out, model.log_sigma)  # (B,)
        kl_dims = gaussian_kl(mu, logvar)  # (B, latent)
        kl = kl_dims.sum(1)
        kl_term = kl_dims.mean(0).clamp_min(self.config.free_bits).sum() if self.config.free_bits > 0 else kl.mean()
        loss = -rec.mean() + kl_weight(self.config, self.step) * kl_term
        elbo = (rec - kl).mean().detach()
        return StepOutput(loss, {"loss": loss.detach(), "elbo": elbo, "kl": kl.mean().detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch[0], self._labels(model, batch)
        out, mu, logvar = model(x, y)
        rec = log_likelihood(x, out, model.log_sigma)
        kl_dims = gaussian_kl(mu, logvar)
        stats = {
            "n": torch.tensor(len(x)), "rec": rec.sum(), "kl": kl_dims.sum(), "kl_dims": kl_dims.sum(0),
            "mu_sq": mu.pow(2).sum(0), "mu_sum": mu.sum(0),
        }
        if self.config.iwae_k > 0:
            stats["iwae"] = iwae_bound(model, x, y, self.config.iwae_k).sum()
        return stats

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        n = float(totals["n"])
        mean = totals["mu_sum"] / n
        activity = totals["mu_sq"] / n - mean.pow(2)  # Var_x E_q[z_j], Burda et al.'s active-unit criterion
        out = {
            "elbo": float(totals["rec"] - totals["kl"]) / n,
            "reconstruction": float(totals["rec"]) / n,
            "kl": float(totals["kl"]) / n,
            "active_units": float((activity > 0.01).sum()),
        }
        if "iwae" in totals:
            out["iwae"] = float(totals["iwae"]) / n
        return out

    @torch.no_grad()
    def sample(
        self, model: nn.Module, n: int, labels: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None, steps: int | None = None,
    ) -> torch.Tensor:
        """n images decoded from the prior, as pixel means in [0, 1] (Bernoulli) or the Gaussian mean."""
        device = next(model.parameters()).device
        z = torch.randn(n, model.config.latent_dim, generator=generator).to(device)
        out = model.decode(z, labels)
        return torch.sigmoid(out) if model.config.likelihood == "bernoulli" else out

    @torch.no_grad()
    def figures(
        self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Evaluation | None = None,
    ) -> list[Path]:
        """Reconstructions, a latent grid over the two most active dimensions (the whole latent space
        when it is 2-D, as in Kingma & Welling's Figure 4) and latent traversals, as PNG grids."""
        from ..report.plots import save_image_grid

        x, y = batch[0][:32], self._labels(model, batch)
        y = None if y is None else y[:32]
        mean = (lambda out: torch.sigmoid(out)) if model.config.likelihood == "bernoulli" else (lambda out: out)
        mu, _ = model.encode(x, y)
        rec = mean(model.decode(mu, y))
        pairs = torch.stack([x, rec], dim=1).flatten(0, 1)  # original, reconstruction, ...
        paths = [save_image_grid(pairs.clamp(0, 1).float().cpu(), folder / f"vae-reconstructions-{split}.png", nrow=16)]
        dims = torch.argsort(mu.var(0), descending=True)  # most active latent dimensions first
        y0 = None if y is None else y[:1]
        # latent grid: Gaussian quantiles of the two most active dimensions, the others at 0
        side = 15
        q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, side, device=x.device))
        z = torch.zeros(side * side, model.config.latent_dim, device=x.device)
        if model.config.latent_dim >= 2:
            z[:, dims[0]] = q.repeat_interleave(side)
            z[:, dims[1]] = q.repeat(side)
            grid = mean(model.decode(z, None if y0 is None else y0.expand(len(z))))
            paths.append(save_image_grid(grid.clamp(0, 1).float().cpu(), folder / f"vae-latent-grid-{split}.png", nrow=side))
        # traversals: one row per active dimension, z_j from -3 to 3 with the others at 0
        rows = dims[: min(10, model.config.latent_dim)]
        steps = torch.linspace(-3, 3, 11, device=x.device)
        z = torch.zeros(len(rows), len(steps), model.config.latent_dim, device=x.device)
        for r, j in enumerate(rows.tolist()):
            z[r, :, j] = steps
        z = z.flatten(0, 1)
        trav = mean(model.decode(z, None if y0 is None else y0.expand(len(z))))
        paths.append(save_image_grid(trav.clamp(0, 1).float().cpu(), folder / f"vae-traversals-{split}.png", nrow=len(steps)))
        return paths


TASKS.register("vae", VAETask, VAETaskConfig(), family="vae", doc="VAE: ELBO (beta, KL annealing, free bits), IWAE test bound")
