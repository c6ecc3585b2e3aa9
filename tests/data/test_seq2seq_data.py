"""Sequence-pair data and the seq2seq metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.errors import DataError
from deepatlas.tasks.seq2seq import string_scores


def pairs_config(path: Path, *extra: str):
    return load_recipe("transformer-reverse-shakespeare", ["data.name=text-pairs", f"data.path={path}", *extra]).data


def test_text_pairs_are_encoded_with_bos_eos_and_padding(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"w{i}\t{'x' * (i % 5 + 1)}\n" for i in range(100)))
    data = load_dataset(pairs_config(path, "data.max_len=8"))
    m = data.meta
    src, tgt = next(iter(data.eval_batches("test", torch.device("cpu"))))
    assert src.shape[1] == 8 and tgt.shape[1] == 10
    assert torch.all(tgt[:, 0] == m["bos_id"]) and torch.all((tgt == m["eos_id"]).sum(1) == 1)
    assert data.decode(tgt[0]).strip("x") == ""
    assert sum(m["sizes"].values()) == 100


def test_malformed_pairs_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("a\tb\nno tab here\n")
    with pytest.raises(DataError, match="bad.tsv: line 2 is not source<TAB>target"):
        load_dataset(pairs_config(path))


def test_string_scores_by_hand() -> None:
    pad = 0
    predicted = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]])
    reference = torch.tensor([[5, 6, 7, 0], [5, 7, 8, 0]])
    s = string_scores(predicted, reference, pad)
    assert s["exact"] == 1 and s["char_matches"] == 3 + 1 and s["char_slots"] == 3 + 3
