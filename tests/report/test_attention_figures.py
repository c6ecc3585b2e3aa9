"""Encoder-decoders that return their attention weights draw them (attention-<split>.png); others draw nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepatlas
from deepatlas.registry import create_model
from deepatlas.tasks.seq2seq import Seq2Seq, Seq2SeqConfig

META = {"pad_id": 0, "bos_id": 1, "eos_id": 2, "_decode": lambda ids: "".join(chr(ord("a") + i - 3) for i in ids.tolist() if i > 2)}


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.randint(3, 12, (5, 8))
    src[1, 5:] = 0
    return src, torch.cat([torch.ones(5, 1, dtype=torch.long), src.flip(1), torch.full((5, 1), 2)], 1)


@pytest.mark.parametrize("name", ["bahdanau-small", "luong-small"])
def test_recurrent_attention_models_draw_their_weights(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, vocab_size=12, embedding=8, hidden=16).eval()
    paths = Seq2Seq(Seq2SeqConfig(), META).figures(model, batch(), tmp_path, "test")
    assert paths == [tmp_path / "attention-test.png"] and paths[0].is_file()
    with Image.open(paths[0]) as image:
        pixels = np.asarray(image.convert("L"))
    assert image.size[0] > 600 and pixels.min() < 100  # drawn, with dark ink (labels, cells)


def test_a_transformer_draws_no_attention_figure(tmp_path: Path) -> None:
    model = create_model("transformer-small", vocab_size=12, d_model=16, n_head=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1)
    assert Seq2Seq(Seq2SeqConfig(), META).figures(model.eval(), batch(), tmp_path, "test") == []
    assert not list(tmp_path.iterdir())


def test_a_trained_run_saves_the_attention_of_test_lines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    words = ["abc", "hello", "tide", "moon", "stars", "rose", "night", "wind", "sea", "fire"]
    path.write_text("".join(f"{w}{i}\t{(w + str(i))[::-1]}\n" for i, w in enumerate(words * 10)))
    overrides = [
        "data.name=text-pairs", f"data.path={path}", "data.max_len=12", "data.batch_size=32", "model.hidden=16",
        "model.embedding=8", "model.attention_size=8", "model.output_size=8", "train.epochs=1", "train.checkpoint_every=0",
        "task.beam_size=2",
    ]
    run = deepatlas.train("bahdanau-reverse-shakespeare", overrides, progress=False)
    figure = run.path / "attention-test.png"
    assert figure.is_file() and figure.stat().st_size > 10_000
    assert "beam_exact_match" in run.summary["eval"]["test"]
