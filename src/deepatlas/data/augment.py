"""Augmentations of self-supervised learning, on whole batches on the device, with seeded generators.

SimCLR (Chen et al. 2020, Appendix A), BYOL (Grill et al. 2020, Table 6) and MoCo v2 (Chen et
al. 2020) learn by making two *views* of each image agree; their augmentations decide what the
representation must be invariant to. For greyscale images the colour part reduces to
brightness and contrast:

- random resized crop: an area fraction s ~ U[s_min, 1] of the image and a log-uniform aspect
  ratio r in [3/4, 4/3] give a box of w = sqrt(s r) W, h = sqrt(s / r) H (clipped to the image)
  at a uniform position, resized back to (H, W) by bilinear sampling;
- horizontal flip with probability 1/2;
- with probability p_jitter: brightness x <- b x, b ~ U[1 - beta, 1 + beta], then contrast
  x <- c (x - m) + m, c ~ U[1 - gamma, 1 + gamma], m the image's mean; clipped to [0, 1];
- with probability p_blur: a Gaussian blur, sigma ~ U[0.1, 2.0], kernel side about 10% of
  the image (odd, at least 3), separable.

Every random number comes from the ``torch.Generator`` passed in (drawn on the CPU, then moved
to the images' device), so a batch's views are a pure function of the generator's seed: a run
resumed mid-epoch sees exactly the views it would have seen. MAE (He et al. 2022) uses only
the crop (s_min = 0.2) and the flip. Inputs and outputs are float images in [0, 1], (B, C, H, W).

Supervised image training (the ``data`` options of every image dataset, :func:`deepatlas.data.images.augment_batch`)
reuses the crop and the jitter, and adds:

- rotation by theta ~ U[-d, d] degrees and scaling by s ~ U[1 - z, 1 + z] about the centre, in one affine
  resampling (bilinear, zeros outside the image): the output pixel at p reads the input at R(-theta) p / s;
- saturation x <- s x + (1 - s) grey(x), s ~ U[1 - sigma, 1 + sigma], grey the ITU-R 601 luma (RGB only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..schema import option
from .transforms import random_hflip


@dataclass(frozen=True)
class ViewOptions:
    """The two-view augmentation pipeline (defaults: SimCLR's, colour jitter reduced to greyscale)."""

    crop_scale_min: float = option(0.08, "random resized crop: smallest area fraction s_min (1: no crop)", low=0.0, high=1.0)
    hflip: bool = option(True, "random horizontal flip")
    brightness: float = option(0.4, "brightness jitter strength beta (0: off)", low=0.0, high=1.0)
    contrast: float = option(0.4, "contrast jitter strength gamma (0: off)", low=0.0, high=1.0)
    jitter_prob: float = option(0.8, "probability of the brightness/contrast jitter", low=0.0, high=1.0)
    blur_prob: float = option(0.5, "probability of the Gaussian blur", low=0.0, high=1.0)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def random_resized_crop(
    x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """A random box per image (area fraction in ``scale``, aspect ratio in ``ratio``), resized to (H, W)."""
    b = x.shape[0]
    if scale[0] >= 1.0:
        return x
    area = _uniform(b, scale[0], scale[1], generator)
    log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), generator)
    r = log_r.exp()
    fw = (area * r).sqrt().clamp(max=1.0)  # box width as a fraction of the image width
    fh = (area / r).sqrt().clamp(max=1.0)
    cx = (1 - fw) * (2 * torch.rand(b, generator=generator) - 1)  # box centre in [-1, 1] coordinates
    cy = (1 - fh) * (2 * torch.rand(b, generator=generator) - 1)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = fw, cx
    theta[:, 1, 1], theta[:, 1, 2] = fh, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def brightness_contrast(
    x: torch.Tensor, generator: torch.Generator, brightness: float, contrast: float, p: float
) -> torch.Tensor:
    """With probability ``p`` per image: scale by b ~ U[1-beta, 1+beta], then stretch about the mean by c."""
    n = x.shape[0]
    apply = (torch.rand(n, generator=generator) < p).to(x.device)[:, None, None, None]
    b = _uniform(n, 1 - brightness, 1 + brightness, generator).to(x.device, x.dtype)[:, None, None, None]
    c = _uniform(n, 1 - contrast, 1 + contrast, generator).to(x.device, x.dtype)[:, None, None, None]
    y = (x * b).clamp(0, 1)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * c + mean).clamp(0, 1)
    return torch.where(apply, y, x)


def random_saturation(x: torch.Tensor, generator: torch.Generator, saturation: float, p: float) -> torch.Tensor:
    """With probability ``p`` per RGB image: blend with its grey version by s ~ U[1 - sigma, 1 + sigma]."""
    n = x.shape[0]
    apply = (torch.rand(n, generator=generator) < p).to(x.device)[:, None, None, None]
    s = _uniform(n, 1 - saturation, 1 + saturation, generator).to(x.device, x.dtype)[:, None, None, None]
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)[None, :, None, None]
    grey = (x * weights).sum(dim=1, keepdim=True)
    return torch.where(apply, ((x - grey) * s + grey).clamp(0, 1), x)


def random_affine(x: torch.Tensor, generator: torch.Generator, degrees: float, zoom: float) -> torch.Tensor:
    """Rotate each image by U[-degrees, degrees] and scale it by U[1 - zoom, 1 + zoom] about its centre."""
    b = x.shape[0]
    angle = _uniform(b, -degrees, degrees, generator) * (math.pi / 180)
    s = _uniform(b, 1 - zoom, 1 + zoom, generator)
    cos, sin = angle.cos() / s, angle.sin() / s  # the inverse map: output -> input coordinates
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin
    theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_kernel_size(side: int) -> int:
    """About 10% of the image side, odd, at least 3 (SimCLR's choice)."""
    k = max(3, round(0.1 * side))
    return k if k % 2 else k + 1


def gaussian_blur(
    x: torch.Tensor, generator: torch.Generator, p: float, sigma: tuple[float, float] = (0.1, 2.0)
) -> torch.Tensor:
    """With probability ``p`` per image, a separable Gaussian blur with sigma ~ U[sigma]."""
    n, ch, h, w = x.shape
    apply = (torch.rand(n, generator=generator) < p).to(x.device)[:, None, None, None]
    s = _uniform(n, sigma[0], sigma[1], generator).to(x.device, x.dtype)
    k = gaussian_kernel_size(min(h, w))
    t = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kernel = torch.exp(-0.5 * (t[None, :] / s[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(ch, 0)  # (N C, k)
    y = x.reshape(1, n * ch, h, w)
    y = F.pad(y, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * ch)  # along the width
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * ch)  # along the height
    return torch.where(apply, y.reshape(n, ch, h, w), x)


def augment(x: torch.Tensor, generator: torch.Generator, options: ViewOptions) -> torch.Tensor:
    """One view of every image in the batch: crop, flip, jitter, blur, in that order."""
    o = options
    x = random_resized_crop(x, generator, (o.crop_scale_min, 1.0))
    if o.hflip:
        x = random_hflip(x, generator)
    if o.jitter_prob > 0 and (o.brightness > 0 or o.contrast > 0):
        x = brightness_contrast(x, generator, o.brightness, o.contrast, o.jitter_prob)
    if o.blur_prob > 0:
        x = gaussian_blur(x, generator, o.blur_prob)
    return x


def two_views(x: torch.Tensor, generator: torch.Generator, options: ViewOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views of every image, each (B, C, H, W) in [0, 1]."""
    return augment(x, generator, options), augment(x, generator, options)
