"""A GPT trained end to end on text; sampling streams from the run; resume stays exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import deepatlas
from deepatlas.cli import app
from deepatlas.engine import load_checkpoint

CORPUS = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\nDeny thy father and refuse thy name.\n\n"
) * 60


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "play.txt"
    path.write_text(CORPUS)
    return path


def lm_overrides(corpus: Path, **extra: object) -> list[str]:
    base = {
        "data.name": "text", "data.path": str(corpus), "data.block_size": 32, "data.batch_size": 16,
        "data.steps_per_epoch": 40, "model.n_layer": 2, "model.n_embd": 64, "model.block_size": 32,
        "train.max_steps": 120, "train.log_every": 20, "train.checkpoint_every": 0, "schedule.warmup": 10,
        "optim.lr": 3e-3,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_gpt_learns_a_small_corpus_and_samples_from_it(corpus: Path) -> None:
    run = deepatlas.train("gpt-shakespeare-char", lm_overrides(corpus), progress=False)
    epochs = run.metrics("epoch")
    assert epochs[-1]["val/loss"] < 0.6 * epochs[0]["train/loss"]
    final = run.summary["final"]
    assert final["val/bpc"] == pytest.approx(final["val/loss"] / torch.log(torch.tensor(2.0)).item(), rel=1e-6)
    assert (run.path / "tokenizer.json").is_file()
    text = "".join(deepatlas.sample(run, "ROMEO:\n", max_new_tokens=60, temperature=0.0))
    assert len(text) == 60 and set(text) <= set(CORPUS)
    assert "Juliet" in text or "light" in text or "window" in text  # it learned the play

    result = CliRunner().invoke(app, ["sample", run.id, "--prompt", "JULIET:", "--max-new-tokens", "40", "--top-k", "5"])
    assert result.exit_code == 0 and result.output.startswith("JULIET:") and len(result.output.strip()) >= 40


def test_language_model_resume_is_exact(corpus: Path) -> None:
    from tests.engine.test_trainer import StopAt

    full = deepatlas.train("gpt-shakespeare-char", lm_overrides(corpus, **{"train.max_steps": 60}), progress=False)
    stopped = deepatlas.train(
        "gpt-shakespeare-char", lm_overrides(corpus, **{"train.max_steps": 60}), callbacks=[StopAt(25)], progress=False
    )
    resumed = deepatlas.resume(stopped.id, progress=False)
    a, b = load_checkpoint(full.checkpoint()), load_checkpoint(resumed.checkpoint())
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_sampling_an_image_run_is_a_clear_error() -> None:
    run = deepatlas.train("quickstart", ["train.epochs=1"], progress=False)
    with pytest.raises(deepatlas.DeepAtlasError, match=r"a classification run cannot generate \(it can: predict\)"):
        list(deepatlas.sample(run, "x"))
