"""The CLIP task: retrieval recall@k and prompt ensembling by hand, and a tiny run that learns from your pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import deepatlas
from deepatlas.errors import CapabilityError
from deepatlas.tasks.clip import CLIPTask, recall_at, retrieval
from tests.data.test_captions import write_pairs

TINY = [
    "model.embed_dim=16", "model.patch_size=4", "model.image_width=32", "model.image_layers=1", "model.image_heads=2",
    "model.text_width=32", "model.text_layers=1", "model.text_heads=2", "data.context_length=24",
]


def test_recall_at_k_by_hand() -> None:
    similarity = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.7, 0.1], [0.1, 0.2, 0.3]])
    hits = recall_at(similarity, torch.eye(3, dtype=torch.bool), (1, 2))
    assert hits[1].tolist() == [True, False, True]  # row 1's own item ranks second
    assert hits[2].tolist() == [True, True, True]
    assert recall_at(similarity, torch.zeros(3, 3, dtype=torch.bool), (3,))[3].tolist() == [False] * 3


def test_retrieval_in_galleries_and_by_class() -> None:
    g = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(10, 4, generator=g), dim=-1)
    perfect = retrieval(image, image, None, (1,), gallery=5)
    assert perfect == {"i2t_r1": 1.0, "t2i_r1": 1.0}
    text = image[torch.tensor([1, 0, 2, 3, 4, 5, 6, 7, 8, 9])]  # the first two captions swapped
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    swapped = retrieval(image, text, labels, (1,), gallery=5)
    assert swapped["i2t_r1"] == pytest.approx(0.8) and swapped["t2i_r1"] == pytest.approx(0.8)
    assert swapped["i2t_class_r1"] == 1.0  # the swapped pair shares a class
    assert len(retrieval(image[:7], text[:7], None, (1,), gallery=5)) == 2  # 7 pairs: one gallery of 7, not 5 + 2


class Towers(torch.nn.Module):
    """A stand-in model whose text embedding is a fixed table lookup by the first token."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.table[tokens[:, 0]], dim=-1)


def test_prompt_ensembling_averages_normalised_embeddings_and_renormalises() -> None:
    table = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, -2.0]])
    tokens = torch.tensor([[[0], [1]], [[2], [3]]])  # 2 classes x 2 templates
    weights = CLIPTask.classifier(Towers(table), tokens)
    expected = F.normalize(torch.stack([
        F.normalize(table[0], dim=0) + F.normalize(table[1], dim=0),
        F.normalize(table[2], dim=0) + F.normalize(table[3], dim=0),
    ]), dim=-1)
    torch.testing.assert_close(weights, expected)  # not the normalised mean of the raw embeddings
    assert not torch.allclose(weights[0], F.normalize(table[0] + table[1], dim=0))


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory: pytest.TempPathFactory) -> deepatlas.tracking.Run:
    folder = tmp_path_factory.mktemp("clip")
    path = write_pairs(folder / "pairs", n=32)
    overrides = [
        *TINY, "data.name=image-captions", f"data.path={path}", "data.image_column=file", "data.caption_column=text",
        "data.channels=1", "data.batch_size=16", "data.hflip=false", "data.crop_padding=0", "data.val_fraction=0.25",
        "data.eval_batch_size=8", "task.gallery=8", "train.epochs=25", "train.monitor=val/loss", "train.test=false",
        "optim.lr=3e-3", "optim.weight_decay=0", "schedule.warmup=1", "train.checkpoint_every=0", "train.threads=1",
    ]
    return deepatlas.train("clip-fashion-mnist", overrides, progress=False, runs_dir=folder / "runs")


def test_a_tiny_run_learns_and_loads_as_an_image_text_predictor(pairs_run: deepatlas.tracking.Run, tmp_path: Path) -> None:
    lines = pairs_run.metrics("epoch")
    assert lines[-1]["train/loss"] < lines[0]["train/loss"] - 0.5  # towards ln 8: 8 identical captions per batch of 16
    predictor = deepatlas.load(pairs_run.path, checkpoint="last")  # its 8 validation pairs say little: take the last weights
    images = sorted((pairs_run.path.parent.parent / "pairs").glob("*.png"), key=lambda p: int(p.stem))
    text = predictor.encode_text(["a square at the top", "a square at the bottom"])
    pixels = predictor.encode_image(images)
    assert text.shape == (2, 16) and pixels.shape == (32, 16)
    np.testing.assert_allclose(np.linalg.norm(pixels, axis=1), 1.0, rtol=1e-5)
    truth = ["top" if int(p.stem) % 2 == 0 else "bottom" for p in images]
    names = predictor.zero_shot(images, ["top", "bottom"], templates=["a square at the {}"])
    assert np.mean([n == t for n, t in zip(names, truth, strict=True)]) >= 0.9
    probabilities = predictor.zero_shot_proba(images[:3], ["top", "bottom"], templates=["a square at the {}"])
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    with pytest.raises(CapabilityError, match="cannot predict .*it can: embed, zero-shot"):
        predictor.predict(images[:1])
    exported = deepatlas.load(predictor.export(tmp_path / "export"))
    np.testing.assert_allclose(exported.encode_text("a square at the top"), text[:1], atol=1e-6)


def test_other_runs_cannot_embed(tmp_path: Path) -> None:
    from tests.conftest import tiny_recipe

    run = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), progress=False)
    with pytest.raises(CapabilityError, match=r"a classification run cannot embed \(it can: export, predict\)"):
        deepatlas.load(run).encode_text("a bag")
