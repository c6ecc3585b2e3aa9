"""Character RNN language models: carried-state generation, explicit = fused, trained by causal-lm, sampled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import deepatlas
from deepatlas.models import count_parameters
from deepatlas.registry import create_model

CORPUS = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\nDeny thy father and refuse thy name.\n\n"
) * 60


def tiny(name: str = "lstm-char", **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **{"n_embd": 16, "hidden": 24, "block_size": 16, **kw}).eval()


def generate(model: torch.nn.Module, prompt: torch.Tensor, n: int, seed: int, **kw: object) -> torch.Tensor:
    return torch.stack(list(model.generate(prompt, n, generator=torch.Generator().manual_seed(seed), **kw)), dim=1)


@pytest.mark.parametrize("name", ["lstm-char", "gru-char", "rnn-char"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_carried_state_generation_equals_rereading_the_history(name: str, temperature: float) -> None:
    model = tiny(name)
    prompt = torch.randint(0, 65, (2, 5))
    carried = generate(model, prompt, 30, seed=3, temperature=temperature, top_k=30)
    reread = generate(model, prompt, 30, seed=3, temperature=temperature, top_k=30, use_cache=False)
    assert carried.shape == (2, 30)
    assert torch.equal(carried, reread)


@pytest.mark.parametrize("name", ["lstm-char", "gru-char", "rnn-char"])
def test_explicit_and_fused_models_agree(name: str) -> None:
    fused = tiny(name, impl="fused", n_layer=2)
    explicit = tiny(name, impl="explicit", n_layer=2)
    explicit.load_state_dict(fused.state_dict())
    x = torch.randint(0, 65, (3, 10))
    torch.testing.assert_close(explicit(x), fused(x), atol=1e-5, rtol=1e-5)


def test_presets_are_the_size_of_the_gpt_they_are_compared_with() -> None:
    gpt = count_parameters(create_model("gpt-tiny"))
    for name in ("lstm-char", "gru-char", "rnn-char"):
        assert abs(count_parameters(create_model(name)) / gpt - 1) < 0.03, name


def test_lstm_learns_a_small_corpus_and_samples_from_it(tmp_path: Path) -> None:
    corpus = tmp_path / "play.txt"
    corpus.write_text(CORPUS)
    overrides = {
        "data.name": "text", "data.path": str(corpus), "data.block_size": 32, "data.batch_size": 16,
        "data.steps_per_epoch": 40, "model.n_embd": 48, "model.hidden": 64, "model.block_size": 32,
        "train.max_steps": 120, "train.log_every": 20, "train.checkpoint_every": 0, "schedule.warmup": 10,
        "optim.lr": 1e-2,
    }
    run = deepatlas.train("lstm-shakespeare-char", [f"{k}={v}" for k, v in overrides.items()], runs_dir=tmp_path / "runs", progress=False)
    epochs = run.metrics("epoch")
    assert epochs[-1]["val/loss"] < 0.6 * epochs[0]["train/loss"]
    assert "val/bpc" in run.summary["final"]
    text = "".join(deepatlas.sample(run.id, "ROMEO:\n", max_new_tokens=40, temperature=0.0, runs_dir=tmp_path / "runs"))
    assert len(text) == 40 and set(text) <= set(CORPUS)
