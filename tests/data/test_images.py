"""Splits, deterministic and resumable batching, augmentation, normalisation, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.data import transforms as T

CPU = torch.device("cpu")


def digits(*overrides: str):
    return load_dataset(load_recipe("quickstart", list(overrides)).data)


def test_validation_split_is_seeded_stratified_and_disjoint() -> None:
    a, b, c = digits(), digits(), digits("data.split_seed=1")
    assert a.fingerprints() == b.fingerprints()
    assert a.fingerprints()["val"] != c.fingerprints()["val"]
    train, val = a.split("train"), a.split("val")
    assert len(train) + len(val) == 1437  # 1797 minus the fixed 20% test split
    val_share = torch.bincount(val.labels, minlength=10).float() / len(val)
    assert val_share.min() > 0.07 and val_share.max() < 0.13  # every class ~10%
    rows = {(*tuple(x.flatten().tolist()), int(y)) for x, y in zip(train.images, train.labels, strict=True)}
    assert not any((*tuple(x.flatten().tolist()), int(y)) in rows for x, y in zip(val.images, val.labels, strict=True))


def test_test_split_is_not_loaded_until_asked() -> None:
    data = digits()
    assert "test" not in data.splits
    assert len(data.split("test")) == 360


def test_training_batches_are_deterministic_and_resumable() -> None:
    data = digits("data.crop_padding=1", "data.hflip=true", "data.batch_size=100")
    full = list(data.train_batches(epoch=3, seed=7, device=CPU))
    again = list(data.train_batches(epoch=3, seed=7, device=CPU))
    tail = list(data.train_batches(epoch=3, seed=7, device=CPU, start=5))
    assert len(full) == data.num_batches() == len(data.split("train")) // 100
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(full, again, strict=True))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(full[5:], tail, strict=True))
    other_epoch = next(iter(data.train_batches(epoch=4, seed=7, device=CPU)))
    assert not torch.equal(full[0][1], other_epoch[1])


def test_each_epoch_sees_distinct_examples() -> None:
    data = digits("data.batch_size=50")
    labels = torch.cat([y for _, y in data.train_batches(0, 0, CPU)])
    assert len(labels) == data.num_batches() * 50  # the last incomplete batch is dropped


def test_normalisation_uses_training_statistics() -> None:
    data = digits()
    x = torch.cat([x for x, _ in data.eval_batches("train", CPU)])
    assert x.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert x.std().item() == pytest.approx(1.0, abs=1e-3)


def test_limit_keeps_the_first_n_training_examples() -> None:
    assert len(digits("data.limit=100").split("train")) == 100


def test_fingerprint_depends_on_content() -> None:
    data = digits()
    split = data.split("train")
    before = split.fingerprint()
    changed = split.subset(np.arange(len(split)))
    changed.images[0, 0, 0, 0] += 1
    assert changed.fingerprint() != before


def test_random_crop_shifts_content_within_padding() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    y = T.random_crop(x, 2, gen)
    assert y.shape == x.shape
    assert torch.all(y.sum(dim=(1, 2, 3)) == 4)  # the 2x2 patch is never cut off with padding 2
    assert len({tuple(img.nonzero()[0].tolist()) for img in y}) > 5  # and lands in many places


def test_hflip_flips_about_half() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(1000, 1, 1, 1)
    y = T.random_hflip(x, gen)
    flipped = (y[:, 0, 0, 0] == 3).float().mean().item()
    assert 0.45 < flipped < 0.55
    assert torch.all((y[:, 0, 0] == x[:, 0, 0]).all(dim=1) | (y[:, 0, 0] == x[:, 0, 0].flip(-1)).all(dim=1))


def test_resize_changes_input_size_in_meta() -> None:
    data = digits("data.resize=16")
    assert data.meta["input_size"] == 16
    assert next(iter(data.eval_batches("val", CPU)))[0].shape[-1] == 16
