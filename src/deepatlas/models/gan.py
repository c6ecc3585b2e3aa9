"""DCGAN (Radford, Metz & Chintala 2016) and its conditional form.

Generator: z ~ N(0, I) -> linear -> (4h, S/4, S/4) -> two stride-2 transposed convolutions
with BatchNorm and ReLU -> tanh image in [-1, 1]. Discriminator: two stride-2
convolutions with LeakyReLU(0.2) (BatchNorm on the second unless spectral
normalisation, Miyato et al. 2018, constrains the layers) -> a linear score
(a logit, or a critic value for the Wasserstein losses).
Conditional: the generator concatenates a learned label embedding to z (Mirza &
Osindero 2014); the discriminator adds the projection term <embed(y), phi(x)>
(Miyato & Koyama 2018) to its score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..registry import register_model
from ..schema import option


@dataclass(frozen=True)
class GANConfig:
    in_channels: int = option(1, "image channels (from the data)", low=1)
    input_size: int = option(28, "image side in pixels (from the data; a multiple of 4)", low=4)
    num_classes: int = option(10, "classes (from the data; used when conditional)", low=1)
    z_dim: int = option(100, "dimension of the generator's noise input", low=1)
    g_width: int = option(64, "generator channels h (layers of 4h, 2h)", low=1)
    d_width: int = option(64, "discriminator channels h (layers of h, 2h)", low=1)
    conditional: bool = option(False, "label embedding in G, projection discriminator")
    spectral_norm: bool = option(False, "spectral normalisation of every discriminator layer (replaces its BatchNorm)")
    d_batchnorm: bool = option(True, "BatchNorm in the discriminator (off for WGAN-GP, whose penalty is per example)")


class Generator(nn.Module):
    def __init__(self, c: GANConfig) -> None:
        super().__init__()
        self.config, s, h = c, c.input_size // 4, c.g_width
        self.label = nn.Embedding(c.num_classes, c.z_dim) if c.conditional else None
        z_in = 2 * c.z_dim if c.conditional else c.z_dim
        self.project = nn.Sequential(nn.Linear(z_in, 4 * h * s * s, bias=False), nn.Unflatten(1, (4 * h, s, s)),
                                     nn.BatchNorm2d(4 * h), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * h, 2 * h, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * h), nn.ReLU(),  # (B, 2h, S/2, S/2)
            nn.ConvTranspose2d(2 * h, c.in_channels, 4, 2, 1), nn.Tanh(),  # (B, C, S, S)
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.label is not None:
            if y is None:
                raise ValueError("a conditional generator needs labels y")
            z = torch.cat([z, self.label(y)], dim=1)
        return self.body(self.project(z))


class Discriminator(nn.Module):
    def __init__(self, c: GANConfig) -> None:
        super().__init__()
        self.config, s, h = c, c.input_size // 4, c.d_width
        sn = spectral_norm if c.spectral_norm else (lambda m: m)
        norm = nn.BatchNorm2d(2 * h) if c.d_batchnorm and not c.spectral_norm else nn.Identity()
        self.features = nn.Sequential(
            sn(nn.Conv2d(c.in_channels, h, 4, 2, 1)), nn.LeakyReLU(0.2),  # (B, h, S/2, S/2)
            sn(nn.Conv2d(h, 2 * h, 4, 2, 1)), norm, nn.LeakyReLU(0.2), nn.Flatten(),  # (B, 2h S/4 S/4)
        )
        width = 2 * h * s * s
        self.score = sn(nn.Linear(width, 1))
        self.label = sn(nn.Embedding(c.num_classes, width)) if c.conditional else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(x)
        out = self.score(phi).squeeze(1)  # (B,)
        if self.label is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs labels y")
            out = out + (self.label(y) * phi).sum(1)  # the projection term
        return out


class GAN(nn.Module):
    """A generator and a discriminator; ``forward(z, y)`` generates, ``sample(n)`` draws images in [0, 1]."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        for m in self.modules():  # DCGAN's initialisation: N(0, 0.02); BatchNorm scale N(1, 0.02)
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and not config.spectral_norm:
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, y)


register_model("dcgan", GAN, GANConfig(), family="gan", doc="DCGAN (Radford et al. 2016) for 28x28 images")
register_model(
    "dcgan-sn", GAN, GANConfig(conditional=True, spectral_norm=True), family="gan",
    doc="conditional DCGAN: label embedding in G, spectrally normalised projection discriminator",
)
