"""The two-view augmentations of self-supervised learning: seeded, batched, in range."""

from __future__ import annotations

import torch

from deepatlas.data.augment import (
    ViewOptions,
    augment,
    brightness_contrast,
    gaussian_blur,
    gaussian_kernel_size,
    random_resized_crop,
    two_views,
)


def images(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_views_and_different_seeds_differ() -> None:
    x = images()
    a1, a2 = two_views(x, gen(3), ViewOptions())
    b1, b2 = two_views(x, gen(3), ViewOptions())
    c1, _ = two_views(x, gen(4), ViewOptions())
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, c1)
    assert not torch.equal(a1, a2)  # the two views of one call are independent draws


def test_views_keep_shape_dtype_and_range() -> None:
    x = images()
    for v in two_views(x, gen(0), ViewOptions()):
        assert v.shape == x.shape and v.dtype == x.dtype
        assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0


def test_views_differ_per_image() -> None:
    x = images(2)[:1].expand(6, -1, -1, -1).contiguous()  # one image six times
    v = augment(x, gen(0), ViewOptions())
    assert len({tuple(row.flatten()[:50].tolist()) for row in v}) == 6


def test_full_crop_is_the_identity_and_a_small_crop_zooms() -> None:
    x = images(4)
    same = random_resized_crop(x, gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    # a quarter-area box centred on a left-right gradient stretches the gradient two-fold
    ramp = torch.linspace(0, 1, 28).expand(1, 1, 28, 28).contiguous()
    zoom = random_resized_crop(ramp, gen(0), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    step = (zoom[0, 0, 14, 20] - zoom[0, 0, 14, 10]) / 10
    assert abs(float(step) - 0.5 / 27) < 1e-3


def test_blur_keeps_a_constant_image_and_smooths_noise() -> None:
    flat = torch.full((3, 1, 28, 28), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, gen(0), p=1.0), flat)
    x = images(3)
    blurred = gaussian_blur(x, gen(0), p=1.0)
    assert blurred.var() < x.var()
    assert torch.equal(gaussian_blur(x, gen(0), p=0.0), x)
    assert gaussian_kernel_size(28) == 3 and gaussian_kernel_size(224) == 23


def test_jitter_off_is_the_identity_and_on_changes_brightness() -> None:
    x = images(4) * 0.5
    assert torch.equal(brightness_contrast(x, gen(0), 0.4, 0.4, p=0.0), x)
    y = brightness_contrast(x, gen(0), 0.4, 0.0, p=1.0)
    ratio = y.mean((1, 2, 3)) / x.mean((1, 2, 3))
    assert ((ratio > 0.6 - 1e-6) & (ratio < 1.4 + 1e-6)).all() and not torch.allclose(ratio, torch.ones(4))


def test_mae_views_only_crop_and_flip() -> None:
    x = images(4)
    mae = ViewOptions(crop_scale_min=1.0, hflip=False, jitter_prob=0.0, blur_prob=0.0)
    assert torch.equal(augment(x, gen(0), mae), x)
