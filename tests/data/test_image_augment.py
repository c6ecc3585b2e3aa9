"""Supervised image augmentation on the device: each op does what it says, off draws nothing, batches resume."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.data.augment import random_affine, random_saturation
from deepatlas.data.images import ImageOptions, augment_batch
from deepatlas.data.transforms import random_vflip
from deepatlas.engine import load_checkpoint
from tests.conftest import tiny_recipe
from tests.engine.test_trainer import StopAt

CPU = torch.device("cpu")
ALL_ON = ["data.vflip=true", "data.crop_scale_min=0.5", "data.rotation=15", "data.zoom=0.1",
          "data.brightness=0.3", "data.contrast=0.3", "data.jitter_prob=0.8", "data.crop_padding=1", "data.hflip=true"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def disc(n: int = 4, side: int = 32, radius: float = 8.0) -> torch.Tensor:
    t = torch.arange(side) - (side - 1) / 2
    r = (t[:, None] ** 2 + t[None, :] ** 2).sqrt()
    return (r < radius).float().expand(n, 1, side, side).contiguous()


def test_options_off_are_the_identity_and_draw_nothing() -> None:
    x, g = torch.rand(4, 3, 8, 8), gen(0)
    state = g.get_state()
    assert torch.equal(augment_batch(x, g, ImageOptions()), x)
    assert torch.equal(g.get_state(), state)  # later draws (and older runs' batches) are unchanged


def test_vertical_flip_mirrors_rows_of_the_chosen_images_only() -> None:
    x = torch.rand(64, 1, 5, 6)
    out = random_vflip(x, gen(1))
    flipped = torch.tensor([torch.equal(o, i.flip(-2)) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert bool((flipped | kept).all()) and 10 < int(flipped.sum()) < 54


def test_rotation_keeps_a_centred_disc_and_turns_a_bar() -> None:
    x = disc()
    assert float((random_affine(x, gen(2), 180, 0) - x).abs().mean()) < 0.02
    bar = torch.zeros(64, 1, 32, 32)
    bar[..., 14:18, :] = 1.0  # a horizontal bar through the centre
    turned = random_affine(bar, gen(3), degrees=90, zoom=0)
    vertical_mass = turned[..., :, 14:18].sum(dim=(1, 2, 3)) / turned.sum(dim=(1, 2, 3))
    assert float(vertical_mass.max()) > 0.5 and float(vertical_mass.min()) < 0.2  # some turned near 90 degrees, some barely


def test_zoom_scales_the_area_of_a_disc() -> None:
    x = disc(n=256, side=64, radius=12)
    out = random_affine(x, gen(4), degrees=0, zoom=0.3)
    ratio = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))  # s^2 for a zoom by s
    assert 0.7**2 - 0.05 < float(ratio.min()) < 0.8 and 1.2 < float(ratio.max()) < 1.3**2 + 0.05
    assert abs(float(ratio.sqrt().mean()) - 1.0) < 0.05  # s ~ U[0.7, 1.3]


def test_saturation_leaves_grey_pixels_and_scales_colour_about_grey() -> None:
    grey = torch.rand(8, 1, 4, 4).expand(8, 3, 4, 4).contiguous()
    torch.testing.assert_close(random_saturation(grey, gen(5), 0.5, 1.0), grey)
    colour = torch.full((8, 3, 4, 4), 0.5)
    colour[:, 0] = 0.7
    out = random_saturation(colour, gen(5), 0.5, 1.0)
    luma = 0.299 * 0.7 + 0.587 * 0.5 + 0.114 * 0.5
    s = (out[:, 0, 0, 0] - luma) / (0.7 - luma)
    assert float(s.min()) >= 0.5 - 1e-5 and float(s.max()) <= 1.5 + 1e-5 and float(s.std()) > 0.05
    one_channel = torch.rand(2, 1, 4, 4)  # greyscale images have no saturation to jitter
    assert torch.equal(augment_batch(one_channel, gen(0), ImageOptions(saturation=0.5)), one_channel)


def test_augmented_batches_are_seeded_in_range_and_resumable_mid_epoch() -> None:
    data = load_dataset(load_recipe("quickstart", [*ALL_ON, "data.normalize=false", "data.batch_size=100"]).data)
    full = list(data.train_batches(epoch=2, seed=7, device=CPU))
    tail = list(data.train_batches(epoch=2, seed=7, device=CPU, start=4))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(full[4:], tail, strict=True))
    plain = load_dataset(load_recipe("quickstart", ["data.normalize=false", "data.batch_size=100"]).data)
    first = next(iter(plain.train_batches(epoch=2, seed=7, device=CPU)))[0]
    assert not torch.equal(full[0][0], first)
    assert float(full[0][0].min()) >= 0.0 and float(full[0][0].max()) <= 1.0 + 1e-6
    assert not math.isnan(float(full[0][0].sum()))


def test_training_with_every_augmentation_resumes_exactly(tmp_path_factory: pytest.TempPathFactory) -> None:
    recipe = tiny_recipe(**{"train.epochs": 2, "data.batch_size": 50, "train.threads": 1})
    recipe += ALL_ON
    whole: Any = deepatlas.train("quickstart", recipe, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)
    stopped = deepatlas.train("quickstart", recipe, callbacks=[StopAt(9)], progress=False)
    resumed = deepatlas.resume(stopped.id, progress=False)
    a, b = (load_checkpoint(r.checkpoint("last"))["model"] for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
