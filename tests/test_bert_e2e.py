"""BERT end to end on a small labelled CSV: masked-LM pre-training, then fine-tuning via init_from."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import deepatlas
import deepatlas.api

WORDS = {"joy": ["glad", "merry", "sweet", "bright", "happy"], "woe": ["sad", "grief", "dark", "tears", "bitter"]}


@pytest.fixture
def labelled_csv(tmp_path: Path) -> Path:
    import random

    rng = random.Random(0)
    path = tmp_path / "moods.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(300):
            label = rng.choice(list(WORDS))
            w.writerow([" ".join(rng.choice(WORDS[label] + ["the", "and", "of"]) for _ in range(6)), label])
    return path


def small_bert(path: Path, *extra: str) -> list[str]:
    return [
        "data.name=text-csv", f"data.path={path}", "data.block_size=40", "data.batch_size=16",
        "model.hidden=32", "model.n_layer=2", "model.n_head=2", "model.intermediate=64", "model.max_position=40",
        "train.epochs=4", "train.test=true", "optim.lr=2e-3", *extra,
    ]


def test_fine_tuning_from_a_pretrained_run(labelled_csv: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(labelled_csv.read_text().replace(",", " ") * 3)
    mlm = deepatlas.train(
        "bert-mlm-shakespeare",
        ["data.name=text", f"data.path={corpus}", "data.block_size=40", "data.steps_per_epoch=20",
         "data.specials=[\"[PAD]\", \"[MASK]\", \"[CLS]\"]",
         "model.hidden=32", "model.n_layer=2", "model.n_head=2", "model.intermediate=64", "model.max_position=40",
         "train.max_steps=40", "schedule.warmup=5"],
        progress=False,
    )
    assert mlm.status == "completed" and mlm.summary["final"]["val/loss"] < 4.0
    tuned = deepatlas.train("bert-speakers-shakespeare", small_bert(labelled_csv, f"train.init_from={mlm.id}"), progress=False)
    report = tuned.summary["init_from"]
    assert report["loaded"] == len(deepatlas.api.build_model(tuned.config).state_dict())  # every tensor fits
    assert tuned.summary["eval"]["test"]["accuracy"] >= 0.9  # the words give the mood away
    # the fine-tuned run reuses the pre-trained tokenizer
    assert (tuned.path / "tokenizer.json").read_text() == (mlm.path / "tokenizer.json").read_text()
    # BERT runs cannot sample: the report fills in masked tokens of a test sequence (pre-training) and shows the
    # attention map of the first test sequence (pre-training and text classification)
    from deepatlas.report.html import run_report

    page = run_report([mlm, tuned], tmp_path / "bert.html").read_text()
    assert page.count("Filling in masked tokens") == 1 and "masked tokens of the first test sequence restored" in page
    assert page.count("<figcaption>attention map for a prompt</figcaption>") == 2


def test_text_csv_errors_name_the_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("sentence,label\nhi,a\n")
    with pytest.raises(deepatlas.DataError, match="no column 'text'"):
        deepatlas.train("bert-speakers-shakespeare", small_bert(path), progress=False)
