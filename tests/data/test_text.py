"""Tokenizers and language-modelling batches."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.data.text import TextData
from deepatlas.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    tokenizer_from_json,
)
from deepatlas.errors import DataError

CPU = torch.device("cpu")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def shakespeare_available() -> bool:
    roots = [os.environ.get("DEEPATLAS_DATA_DIR", ""), str(SHARED)]
    return any((Path(r) / "tinyshakespeare" / "input.txt").is_file() for r in roots if r)


@pytest.fixture
def shakespeare(monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("DEEPATLAS_DATA_DIR") and (SHARED / "tinyshakespeare" / "input.txt").is_file():
        monkeypatch.setenv("DEEPATLAS_DATA_DIR", str(SHARED))
    if not shakespeare_available():
        if os.environ.get("CI"):
            pytest.fail("Tiny Shakespeare is missing: .ci/run must set DEEPATLAS_DATA_DIR to ../shared/data")
        pytest.skip("Tiny Shakespeare not available offline")


def text_config(path: Path, *extra: str):
    return load_recipe("gpt-shakespeare-char", ["data.name=text", f"data.path={path}", *extra]).data


def test_char_tokenizer_round_trip_and_specials() -> None:
    tok = CharTokenizer.train("hello world", specials=("[MASK]",))
    assert tok.vocab_size == 9 and tok.token_id("[MASK]") == 8
    assert tok.decode(tok.encode("low hello")) == "low hello"
    assert tokenizer_from_json(tok.to_json()).encode("hold") == tok.encode("hold")
    with pytest.raises(DataError, match="'z' is not in the tokenizer"):
        tok.encode("zoo")


def test_bpe_tokenizer_trains_round_trips_and_reloads(tmp_path: Path) -> None:
    text = "the quick brown fox jumps over the lazy dog. " * 200 + "émigré naïve café"
    tok = BPETokenizer.train(text, vocab_size=300, specials=("[PAD]",))
    ids = tok.encode("the lazy fox")
    assert len(ids) < len("the lazy fox")  # merges happened
    assert tok.decode(ids) == "the lazy fox"
    assert tok.decode(tok.encode("café naïve")) == "café naïve"  # bytes cover any text
    path = tmp_path / "tok.json"
    path.write_text(__import__("json").dumps(tok.to_json()))
    assert load_tokenizer(path).encode("the lazy fox") == ids


def test_windows_are_shifted_deterministic_and_resumable(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("".join(chr(97 + i % 26) for i in range(5000)))
    data = load_dataset(text_config(path, "data.block_size=16", "data.steps_per_epoch=6", "data.batch_size=4"))
    batches = list(data.train_batches(2, 5, CPU))
    assert len(batches) == 6 and batches[0][0].shape == (4, 16)
    x, y = batches[0]
    assert torch.equal(x[:, 1:], y[:, :-1])
    tail = list(data.train_batches(2, 5, CPU, start=4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches[4:], tail, strict=True))


def test_evaluation_windows_cover_each_position_once(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("abcdefghij" * 300)
    data = load_dataset(text_config(path, "data.block_size=7", "data.eval_batch_size=5"))
    ys = torch.cat([y.flatten() for _, y in data.eval_batches("val", CPU)])
    val = data.split("val").ids
    assert torch.equal(ys, val[1 : 1 + len(ys)]) and len(val) - 1 - len(ys) < 7


def test_user_text_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt: not UTF-8"):
        load_dataset(text_config(bad))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(text_config(tmp_path / "missing.txt"))


@pytest.mark.usefixtures("shakespeare")
def test_tiny_shakespeare_matches_nanogpt_split() -> None:
    data = load_dataset(load_recipe("gpt-shakespeare-char").data)
    assert isinstance(data, TextData)
    assert data.meta["vocab_size"] == 65
    assert data.meta["sizes"]["train"] == 1_003_854 and data.meta["sizes"]["val"] == 111_540  # int(0.9 n)
    assert data.tokenizer.decode(data.split("train").ids[:14].tolist()) == "First Citizen:"


def test_bpe_corpus_trains_on_the_training_split_and_counts_characters(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question. " * 300)
    data = load_dataset(text_config(path, "data.tokenizer=bpe", "data.vocab_size=300", "data.block_size=8"))
    assert data.meta["tokenizer"] == "bpe" and data.meta["vocab_size"] <= 300
    lengths = data.meta["_char_lengths"]
    ids = data.split("val").ids[:50]
    assert lengths[ids].sum().item() == len(data.tokenizer.decode(ids.tolist()))  # bits per *character*


def stream_data(tmp_path: Path, *extra: str) -> TextData:
    path = tmp_path / "stream.txt"
    path.write_text("".join(chr(97 + (i * 7 + i // 26) % 26) for i in range(2000)))
    return load_dataset(text_config(path, "data.sampling=stream", "data.block_size=10", "data.batch_size=4", *extra))


def test_stream_batches_continue_row_by_row_across_epochs_and_restart_each_pass(tmp_path: Path) -> None:
    data = stream_data(tmp_path, "data.steps_per_epoch=30")
    ids = data.split("train").ids
    per_pass = ((len(ids) - 1) // 10) // 4  # 1799 tokens: 179 windows, 44 per track
    assert per_pass == 44
    batches = [b for epoch in range(3) for b in data.train_batches(epoch, 0, CPU)]  # 90 batches: 2 passes and more
    assert all(b.x.shape == (4, 10) and torch.equal(b.x[:, 1:], b.y[:, :-1]) for b in batches)
    for g, (prev, nxt) in enumerate(itertools.pairwise(batches), start=1):
        restart = g % per_pass == 0
        assert nxt.reset.tolist() == [restart] * 4, g
        if not restart:  # row b goes on where it stopped, even across an epoch boundary (g = 30, 60)
            assert torch.equal(nxt.x[:, 0], prev.y[:, -1]), g
    assert batches[0].reset.all() and torch.equal(batches[per_pass].x, batches[0].x)
    track0 = torch.cat([b.x[0] for b in batches[:per_pass]])
    assert torch.equal(track0, ids[: per_pass * 10])  # track 0 is the start of the split, in order
    assert torch.equal(batches[0].x[1], ids[per_pass * 10 : per_pass * 10 + 10])  # track 1 follows it
    resumed = list(data.train_batches(1, 0, CPU, start=17))  # no randomness: a resume lands on the same batch
    assert all(torch.equal(a.x, b.x) and torch.equal(a.reset, b.reset) for a, b in zip(batches[47:60], resumed, strict=True))


def test_stream_evaluation_has_the_windows_of_random_evaluation(tmp_path: Path) -> None:
    stream, windows = stream_data(tmp_path, "data.eval_batch_size=6"), stream_data(tmp_path, "data.eval_batch_size=6", "data.sampling=random")
    batches = list(stream.eval_batches("val", CPU))
    assert len(batches) == stream.num_batches("val") == windows.num_batches("val")
    rows = [len(b.x) for b in batches]  # 199 tokens, 19 windows in 6 tracks of 4, 3, 3, 3, 3, 3
    assert rows == [6, 6, 6, 1] and [bool(b.reset.all()) for b in batches] == [True, False, False, False]
    for prev, nxt in itertools.pairwise(batches):
        assert torch.equal(nxt.x[:, 0], prev.y[: len(nxt.x), -1])

    def key(x: torch.Tensor) -> list[tuple[int, ...]]:
        return sorted(tuple(r.tolist()) for r in x)
    assert key(torch.cat([b.x for b in batches])) == key(torch.cat([x for x, _ in windows.eval_batches("val", CPU)]))
    assert stream.meta["sampling"] == "stream" and windows.meta["sampling"] == "random"


def test_stream_needs_a_window_per_track(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.batch_size: stream sampling .* only 179 windows"):
        stream_data(tmp_path, "data.batch_size=200")
