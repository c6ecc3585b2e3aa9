"""Segmentation data: the generated shapes set is deterministic, flips move image and mask together, and the
image + mask folder reader accepts good folders and names the file and the fix for bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepatlas.config import DataConfig
from deepatlas.data import load_dataset
from deepatlas.data.segmentation import SHAPE_CLASSES, ShapesOptions, generate_shapes
from deepatlas.errors import DataError
from deepatlas.registry import DATASETS
from deepatlas.schema import parse

CPU = torch.device("cpu")


def data_config(name: str, **options: object) -> DataConfig:
    common = {k: options.pop(k) for k in list(options) if k in ("batch_size", "eval_batch_size", "val_fraction", "limit")}
    config = parse(DataConfig, {"name": name, **common}, "data")
    entry = DATASETS.get(name)
    return DataConfig(**{**config.__dict__, "options": type(entry.config)(**{**entry.config.__dict__, **options})})


def small_shapes(**options: object):
    return load_dataset(data_config("shapes", train_size=60, test_size=20, batch_size=8, **options))


def test_shapes_are_the_same_bytes_for_the_same_seed_and_differ_for_another() -> None:
    a, b, c = generate_shapes(20, 32, seed=7), generate_shapes(20, 32, seed=7), generate_shapes(20, 32, seed=8)
    assert a.fingerprint() == b.fingerprint() and torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert a.fingerprint() != c.fingerprint()
    # the bytes are fixed, not just repeatable within one process: the digest of seed 0 as first generated
    first = generate_shapes(2, 16, seed=0)
    assert first.fingerprint() == "ee4340607d0c67e322f3c752bf6183d681be9647189d710f0d1d4a7fc082cdd2"
    assert first.images.dtype == torch.uint8 and first.images.shape == (2, 3, 16, 16) and first.masks.shape == (2, 16, 16)


def test_shapes_set_has_every_class_a_mostly_background_mask_and_separate_test_images() -> None:
    data = small_shapes()
    assert data.meta["num_classes"] == 4 and data.meta["class_names"] == SHAPE_CLASSES
    assert data.meta["in_channels"] == 3 and data.meta["input_size"] == 64 and data.meta["sizes"] == {"train": 54, "val": 6}
    pixels = np.asarray(data.meta["class_pixels"])
    assert (pixels > 0).all() and pixels[0] > pixels[1:].sum()  # background dominates; each shape occurs
    assert data.split("train").fingerprint() != data.split("test").fingerprint()
    again = small_shapes()
    assert again.fingerprints(("train", "val", "test")) == data.fingerprints(("train", "val", "test"))
    assert small_shapes(seed=1).fingerprints() != data.fingerprints()


def test_a_shapes_mask_is_where_the_image_differs_from_its_background() -> None:
    """Shapes are flat colours chosen at least 0.35 away from what they cover: label maps are not noise."""
    split = generate_shapes(30, 64, seed=3, noise=0.0)
    for image, mask in zip(split.images.float() / 255, split.masks, strict=True):
        inside = mask > 0
        if inside.any():
            colours = image[:, inside].T  # (pixels, 3) inside shapes: a few flat colours
            assert len(torch.unique((colours * 255).round(), dim=0)) <= 3


def test_batches_are_seeded_resumable_and_flips_move_image_and_mask_together() -> None:
    data = small_shapes(hflip=True, vflip=True, normalize=False)
    first = list(data.train_batches(epoch=1, seed=5, device=CPU))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, data.train_batches(1, 5, CPU), strict=True))
    resumed = list(data.train_batches(epoch=1, seed=5, device=CPU, start=2))
    assert torch.equal(resumed[0][0], first[2][0]) and torch.equal(resumed[0][1], first[2][1])
    train = data.split("train")
    flipped = 0
    for (x, y), index in zip(first, data.epoch_index(1, 5), strict=True):
        raw_x, raw_y = train.images[index].float() / 255, train.masks[index].long()
        for i in range(len(index)):
            matches = [
                (dims, torch.allclose(x[i], raw_x[i].flip(dims) if dims else raw_x[i]) and torch.equal(y[i], raw_y[i].flip(dims) if dims else raw_y[i]))
                for dims in ((), (-1,), (-2,), (-2, -1))
            ]
            assert any(ok for _, ok in matches), "the image and its mask got the same flip"
            flipped += not matches[0][1]
    assert 0 < flipped < len(train)  # some flipped, some not


def test_preprocessor_reproduces_the_evaluation_batches_from_raw_pixels() -> None:
    data = small_shapes()
    x, _ = next(data.eval_batches("val", CPU))
    raw = data.split("val").images[:3]
    assert torch.allclose(data.preprocessor()(raw), x[:3], atol=1e-5)


# --------------------------------------------------------------------------- your own folder


def write_pair(root: Path, stem: str, mask: np.ndarray, image_size: tuple[int, int] | None = None, mode: str = "L") -> None:
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    h, w = image_size or mask.shape
    rng = np.random.default_rng(len(stem))
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{stem}.png")
    picture = Image.fromarray(mask.astype(np.uint8))
    (picture.convert(mode) if mode != "L" else picture).save(root / "masks" / f"{stem}.png")


def folder(path: Path, **options: object):
    return load_dataset(data_config("segmentation-folder", path=str(path), val_fraction=0.25, batch_size=2, **options))


def masks(n: int, size: int = 8, classes: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [rng.integers(0, classes, (size, size)) for _ in range(n)]
    out[0][0, 0] = classes - 1  # the largest label occurs
    return out


def test_folder_reads_images_and_masks_by_stem_infers_classes_and_holds_out_a_test_split(tmp_path: Path) -> None:
    for i, m in enumerate(masks(10)):
        write_pair(tmp_path, f"img{i:02d}", m)
    data = folder(tmp_path)
    assert data.meta["num_classes"] == 3 and data.meta["sizes"] == {"train": 6, "val": 2}
    assert len(data.split("test")) == 2  # data.test_fraction 0.2 of 10
    x, y = next(data.eval_batches("val", CPU))
    assert x.shape == (2, 3, 8, 8) and y.dtype == torch.int64 and int(y.max()) < 3
    assert folder(tmp_path, num_classes=5).meta["num_classes"] == 5
    resized = folder(tmp_path, resize=4)
    assert next(resized.eval_batches("val", CPU))[1].shape == (2, 4, 4)


def test_folder_with_train_and_test_and_an_ignore_index(tmp_path: Path) -> None:
    for split, n in (("train", 8), ("test", 3)):
        for i, m in enumerate(masks(n)):
            m[1, 1] = 255  # unlabelled
            write_pair(tmp_path / split, f"{split}{i}", m)
    data = folder(tmp_path, ignore_index=255)
    assert data.meta["num_classes"] == 3 and data.meta["ignore_index"] == 255
    assert len(data.split("test")) == 3
    with pytest.raises(DataError, match=r"train0.png: label 255 would make 256 classes.*set data.ignore_index=255"):
        folder(tmp_path)
    with pytest.raises(DataError, match=r"label 255 is not a class \(0..2\); set data.num_classes or data.ignore_index"):
        folder(tmp_path, num_classes=3)


def test_folder_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    for i, m in enumerate(masks(4)):
        write_pair(tmp_path, f"a{i}", m)
    (tmp_path / "masks" / "a2.png").unlink()
    with pytest.raises(DataError, match=r"a2.png: no mask .*masks/a2.png \(each image needs a PNG label map"):
        folder(tmp_path)

    other = tmp_path / "sizes"
    write_pair(other, "b", masks(1)[0], image_size=(8, 10))
    with pytest.raises(DataError, match=r"b.png: mask is 8x8 but its image b.png is 10x8"):
        folder(other)

    labels = tmp_path / "labels"
    for i, m in enumerate(masks(3, classes=6)):
        write_pair(labels, f"c{i}", m)
    with pytest.raises(DataError, match=r"c0.png: label 5 is not a class \(0..3\)"):
        folder(labels, num_classes=4)

    colour = tmp_path / "colour"
    write_pair(colour, "d", masks(1)[0], mode="RGB")
    with pytest.raises(DataError, match=r"d.png: mask is a RGB image; save label maps as single-channel"):
        folder(colour)

    empty = tmp_path / "no-masks"
    (empty / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no-masks: no masks/ folder"):
        folder(empty)
    with pytest.raises(DataError, match="data.path: segmentation-folder needs the folder"):
        load_dataset(data_config("segmentation-folder"))


def test_segmentation_sets_are_listed_for_the_segmentation_task() -> None:
    listed = DATASETS.listings()
    assert listed["shapes"].data_kinds == ("segmentation",) and listed["segmentation-folder"].data_kinds == ("segmentation",)
    assert ShapesOptions().train_size == 2000 and ShapesOptions().test_size == 500 and ShapesOptions().size == 64
