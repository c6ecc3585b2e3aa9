"""The variational autoencoder (Kingma & Welling 2013), MLP and convolutional.

Encoder q_phi(z|x) = N(mu(x), diag(sigma^2(x))) outputs (mu, log sigma^2); a sample is
z = mu + sigma * eps with eps ~ N(0, I) (the reparameterisation trick, Section 2.4);
the decoder p_theta(x|z) outputs the parameters of the likelihood: Bernoulli logits or
the Gaussian mean (with one learned log standard deviation per pixel). The paper's MLP
has one hidden layer of tanh units (Appendix C); the convolutional form follows DCGAN's
layout. A conditional VAE (Sohn et al. 2015) feeds a one-hot label to both networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from ..schema import option


@dataclass(frozen=True)
class VAEConfig:
    arch: Literal["mlp", "conv"] = option("mlp", "encoder/decoder networks: mlp or conv")
    in_channels: int = option(1, "image channels (from the data)", low=1)
    input_size: int = option(28, "image side in pixels (from the data; conv needs a multiple of 4)", low=4)
    num_classes: int = option(10, "classes (from the data; used when conditional)", low=1)
    latent_dim: int = option(20, "dimension of z", low=1)
    hidden: int = option(400, "mlp: hidden units; conv: channels of the first conv layer", low=1)
    depth: int = option(1, "mlp: hidden layers in each network", low=1)
    activation: Literal["tanh", "relu"] = option("relu", "mlp hidden activation (the paper: tanh)")
    likelihood: Literal["bernoulli", "gaussian"] = option("bernoulli", "p(x|z): Bernoulli on [0,1] pixels or Gaussian")
    conditional: bool = option(False, "condition encoder and decoder on the label (CVAE)")


class VAE(nn.Module):
    """``forward(x, y)`` -> (likelihood parameters, mu, logvar); ``decode(z, y)``; ``sample(n, y)``."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.shape = (c.in_channels, c.input_size, c.input_size)
        n_pixels = c.in_channels * c.input_size * c.input_size
        cond = c.num_classes if c.conditional else 0
        act = nn.Tanh if c.activation == "tanh" else nn.ReLU
        if c.arch == "mlp":
            enc: list[nn.Module] = [nn.Flatten()]
            width = n_pixels + cond
            for _ in range(c.depth):
                enc += [nn.Linear(width, c.hidden), act()]
                width = c.hidden
            self.encoder = nn.Sequential(*enc)
            dec: list[nn.Module] = []
            width = c.latent_dim + cond
            for _ in range(c.depth):
                dec += [nn.Linear(width, c.hidden), act()]
                width = c.hidden
            dec += [nn.Linear(width, n_pixels), nn.Unflatten(1, self.shape)]
            self.decoder = nn.Sequential(*dec)
            feat = c.hidden
        else:
            h, s = c.hidden, c.input_size // 4
            self.encoder = nn.Sequential(  # (B, C, S, S) -> (B, 2h * S/4 * S/4)
                nn.Conv2d(c.in_channels + cond, h, 4, 2, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(h, 2 * h, 4, 2, 1), nn.BatchNorm2d(2 * h), nn.LeakyReLU(0.2), nn.Flatten(),
            )
            self.decoder = nn.Sequential(
                nn.Linear(c.latent_dim + cond, 2 * h * s * s), nn.Unflatten(1, (2 * h, s, s)), nn.BatchNorm2d(2 * h), nn.ReLU(),
                nn.ConvTranspose2d(2 * h, h, 4, 2, 1), nn.BatchNorm2d(h), nn.ReLU(),
                nn.ConvTranspose2d(h, c.in_channels, 4, 2, 1),
            )
            feat = 2 * h * s * s
        self.to_mu = nn.Linear(feat, c.latent_dim)
        self.to_logvar = nn.Linear(feat, c.latent_dim)
        # Gaussian decoder: one learned log-sigma per pixel (a global variance is a common alternative)
        self.log_sigma = nn.Parameter(torch.zeros(self.shape)) if c.likelihood == "gaussian" else None

    def _condition(self, x: torch.Tensor, y: torch.Tensor | None, image: bool) -> torch.Tensor:
        c = self.config
        if not c.conditional:
            return x
        if y is None:
            raise ValueError("a conditional VAE needs labels y")
        onehot = F.one_hot(y, c.num_classes).to(x.dtype)
        if image and c.arch == "conv":
            return torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return torch.cat([x.flatten(1) if image else x, onehot], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(self._condition(x, y, image=True))
        return self.to_mu(h), self.to_logvar(h)  # (B, latent), (B, latent)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self._condition(z, y, image=False))  # (B, C, H, W): logits or means

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x, y)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # the reparameterisation trick
        return self.decode(z, y), mu, logvar


register_model(
    "vae-mlp", VAE, VAEConfig(), family="vae",
    doc="VAE (Kingma & Welling 2013): MLP 400 hidden, 20-d latent, Bernoulli pixels",
)
register_model(
    "vae-conv", VAE, VAEConfig(arch="conv", hidden=32, latent_dim=32), family="vae",
    doc="convolutional VAE (DCGAN layout, 32/64 channels), 32-d latent",
)
