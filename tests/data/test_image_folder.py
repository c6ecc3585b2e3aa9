"""Bring your own images: one sub-folder per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.errors import DataError


def make_folder(root: Path, per_class: int = 12, size: int = 10, classes: tuple[str, ...] = ("cat", "dog", "owl")) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3)) + 90 * c  # classes differ in brightness
            suffix = ".png" if i % 2 else ".jpg"
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}{suffix}")
    return root


def folder_config(path: Path, *extra: str):
    return load_recipe("quickstart", ["data.name=image-folder", f"data.path={path}", *extra]).data


def test_reads_classes_and_splits(tmp_path: Path) -> None:
    data = load_dataset(folder_config(make_folder(tmp_path / "imgs")))
    assert data.class_names == ["cat", "dog", "owl"]
    assert data.meta["in_channels"] == 3 and data.meta["input_size"] == 10
    assert len(data.split("train")) + len(data.split("val")) + len(data.split("test")) == 36


def test_train_and_test_subfolders(tmp_path: Path) -> None:
    make_folder(tmp_path / "train")
    make_folder(tmp_path / "test", per_class=2)
    data = load_dataset(folder_config(tmp_path, "data.channels=1", "data.resize=8"))
    assert len(data.split("test")) == 6
    x, _ = next(iter(data.eval_batches("test", torch.device("cpu"))))
    assert x.shape == (6, 1, 8, 8)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: cannot decode image"):
        load_dataset(folder_config(root))


def test_mixed_sizes_need_resize(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "owl" / "big.png")
    with pytest.raises(DataError, match="set data.resize"):
        load_dataset(folder_config(root))
    assert load_dataset(folder_config(root, "data.resize=10")).meta["input_size"] == 10


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.path"):
        load_dataset(load_recipe("quickstart", ["data.name=image-folder"]).data)
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(folder_config(tmp_path / "nope"))


def test_files_are_streamed_when_too_large_for_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepatlas.data import sources

    monkeypatch.setattr(sources, "IN_MEMORY_LIMIT", 0)
    data = load_dataset(folder_config(make_folder(tmp_path / "imgs"), "data.num_workers=2"))
    assert not data.split("train").in_memory
    batches = list(data.train_batches(0, 0, torch.device("cpu")))
    again = list(data.train_batches(0, 0, torch.device("cpu")))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))


def test_a_model_trains_on_an_image_folder(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", per_class=30)
    run = deepatlas.train(
        "quickstart",
        ["data.name=image-folder", f"data.path={root}", "data.batch_size=16", "train.epochs=8", "train.test=true"],
        progress=False,
    )
    assert run.status == "completed"
    assert run.summary["eval"]["test"]["accuracy"] >= 0.9  # brightness separates the classes
