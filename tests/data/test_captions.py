"""Image-caption data: generated Fashion-MNIST captions with held-out templates, your CSV of pairs, the tokenizer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from deepatlas.config import Config
from deepatlas.data import load_dataset
from deepatlas.data.captions import (
    FASHION_PROMPT_NAMES,
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    caption_tokenizer,
    fashion_caption,
    prompts,
    with_article,
)
from deepatlas.data.preprocess import load_preprocessor
from deepatlas.errors import DataError


def uses(caption: str, template: str) -> bool:
    head, tail = template.split("{}")
    return caption.startswith(head) and caption.endswith(tail)


def test_training_and_held_out_templates_do_not_overlap() -> None:
    rng = np.random.default_rng(0)
    train = [fashion_caption(i % 10, i % 3, rng, held_out=False) for i in range(3000)]
    held = [fashion_caption(i % 10, i % 3, rng, held_out=True) for i in range(3000)]
    for caption in held:
        assert any(uses(caption, t) for t in HELD_OUT_TEMPLATES)
    for caption in train:  # no training caption reads as a held-out template ("{}." matches all: excluded)
        assert not any(uses(caption, t) for t in HELD_OUT_TEMPLATES), caption
    assert len(set(train)) > 1000  # varied: templates, synonyms, descriptions, brightness
    assert any("sweater" in c for c in train) and not any("sweater" in c for c in held)  # held out: class names only


def test_articles_and_prompt_ensembles() -> None:
    assert with_article("ankle boot") == "an ankle boot" and with_article("sneaker") == "a sneaker"
    assert with_article("the bag") == "the bag"
    groups = prompts(["sneaker", "ankle boot"], HELD_OUT_TEMPLATES)
    assert len(groups) == 2 and len(groups[0]) == len(HELD_OUT_TEMPLATES)
    assert groups[1][0] == HELD_OUT_TEMPLATES[0].format("an ankle boot")
    assert len(FASHION_PROMPT_NAMES) == 10 and TRAIN_TEMPLATES


def test_tokenizer_puts_end_of_text_last_and_cuts_long_captions() -> None:
    tokenizer = caption_tokenizer(["Ünïcode"])
    assert tokenizer.token_id("[EOT]") == tokenizer.vocab_size - 1
    assert "ü" in tokenizer.chars
    from deepatlas.data.preprocess import ImageTextPreprocessor

    pre = ImageTextPreprocessor(1, 8, 255.0, (0.5,), (0.25,), tokenizer, 10)
    ids = pre(["A Bag", "a very long caption indeed"])
    assert ids.shape == (2, 10)
    assert ids[0, 0] == tokenizer.token_id("[SOT]") and tokenizer.decode(ids[0, 1:6].tolist()) == "a bag"
    assert ids[0, 6] == tokenizer.vocab_size - 1 and (ids[0, 7:] == tokenizer.token_id("[PAD]")).all()
    assert ids[1, -1] == tokenizer.vocab_size - 1  # cut to fit, end-of-text kept
    assert (ids.argmax(-1) == torch.tensor([6, 9])).all()  # where CLIP pools
    images = pre(np.full((3, 8, 8), 255, dtype=np.uint8))
    torch.testing.assert_close(images, torch.full((3, 1, 8, 8), 2.0))


def write_pairs(folder: Path, n: int = 24, side: int = 8) -> Path:
    """Images with a bright square at the top or at the bottom, and captions that say which."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        pixels = np.zeros((side, side), dtype=np.uint8)
        top = i % 2 == 0
        pixels[: side // 2 if top else side, :] = 0
        pixels[(0 if top else side // 2) : (side // 2 if top else side), 1 : side - 1] = 200 + i
        Image.fromarray(pixels).save(folder / f"{i}.png")
        rows.append({"file": f"{i}.png", "text": "a square at the top" if top else "a square at the bottom"})
    path = folder / "pairs.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def pairs_config(path: Path, **extra: object) -> Config:
    data = {"name": "image-captions", "path": str(path), "image_column": "file", "caption_column": "text", "channels": 1, **extra}
    return Config.from_dict({"data": data, "model": {"name": "clip-mini"}, "task": {"name": "clip"}})


def test_your_csv_of_pairs(tmp_path: Path) -> None:
    path = write_pairs(tmp_path / "pairs")
    data = load_dataset(pairs_config(path, batch_size=4, val_fraction=0.25, test_fraction=0.25).data)
    assert {k: len(data.split(k)) for k in ("train", "val", "test")} == {"train": 13, "val": 5, "test": 6}
    assert data.meta["in_channels"] == 1 and data.meta["input_size"] == 8 and "prompt_names" not in data.meta
    images, tokens, labels = next(iter(data.train_batches(0, 0, torch.device("cpu"))))
    assert images.shape == (4, 1, 8, 8) and tokens.shape == (4, 56) and (labels == -1).all()
    assert data.fingerprints() == load_dataset(pairs_config(path, batch_size=4, val_fraction=0.25, test_fraction=0.25).data).fingerprints()
    data.save(tmp_path / "run")
    pre = load_preprocessor(tmp_path / "run")
    torch.testing.assert_close(pre.text(["a square at the top"]), data.preprocessor().text("a square at the top"))


def test_csv_errors_name_the_key(tmp_path: Path) -> None:
    path = write_pairs(tmp_path / "pairs", n=4)
    with pytest.raises(DataError, match=r"data.caption_column: column 'caption' is not in .*its columns: file, text"):
        load_dataset(pairs_config(path, caption_column="caption").data)
    (tmp_path / "pairs" / "2.png").unlink()
    with pytest.raises(DataError, match=r"pairs.csv:4: image '2.png' not found"):
        load_dataset(pairs_config(path).data)
    with pytest.raises(DataError, match="data.path: image-captions needs"):
        load_dataset(Config.from_dict({"data": {"name": "image-captions"}, "model": {"name": "clip-mini"}, "task": {"name": "clip"}}).data)


def test_a_folder_with_its_captions(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    csv_path = write_pairs(folder)
    csv_path.rename(folder / "captions.csv")  # a folder with captions.csv: data.path is the folder
    from_csv = load_dataset(pairs_config(folder, val_fraction=0.25, test_fraction=0.25).data)
    (folder / "captions.csv").unlink()
    lines = [f"{i}.png\t{'a square at the top' if i % 2 == 0 else 'a square at the bottom'}" for i in range(24)]
    (folder / "captions.txt").write_text("\n".join(lines) + "\n\n")
    from_txt = load_dataset(pairs_config(folder, val_fraction=0.25, test_fraction=0.25).data)
    assert from_txt.fingerprints() == from_csv.fingerprints()  # the same pairs either way
    (folder / "captions.txt").write_text("0.png a square with no tab\n")
    with pytest.raises(DataError, match=r"captions.txt:1: expected 'file<TAB>caption'"):
        load_dataset(pairs_config(folder).data)
    (folder / "captions.txt").unlink()
    with pytest.raises(DataError, match="has neither a captions.csv"):
        load_dataset(pairs_config(folder).data)


@pytest.mark.usefixtures("fashion_mnist")
def test_fashion_mnist_captions() -> None:
    config = Config.from_dict({
        "data": {"name": "fashion-mnist-captions", "limit": 64, "batch_size": 16, "val_fraction": 0.01},
        "model": {"name": "clip-mini"}, "task": {"name": "clip"},
    })
    data = load_dataset(config.data)
    meta = data.meta
    assert meta["prompt_templates"] == list(HELD_OUT_TEMPLATES) and meta["prompt_names"] == list(FASHION_PROMPT_NAMES)
    assert meta["vocab_size"] == data.tokenizer.vocab_size and meta["num_classes"] == 10
    val = data.split("val")
    assert len(val) == 600 and all(any(uses(c, t) for t in HELD_OUT_TEMPLATES) for c in val.captions)
    first = [data.caption("train", i, epoch=0) for i in range(16)]
    assert first == [data.caption("train", i, epoch=0) for i in range(16)]  # a pure function of (seed, epoch, example)
    assert first != [data.caption("train", i, epoch=1) for i in range(16)]  # fresh captions every epoch
    a = next(iter(data.train_batches(1, 0, torch.device("cpu"), start=2)))
    b = list(data.train_batches(1, 0, torch.device("cpu")))[2]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)  # resumable mid-epoch
