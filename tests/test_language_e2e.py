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
        # One thread: an automatic count follows the idle cores when each run starts, so two runs compared
        # for equality could round differently on a busy machine.
        "train.threads": 1,
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
    with pytest.raises(deepatlas.DeepAtlasError, match=r"a classification run cannot generate \(it can: export, predict\)"):
        list(deepatlas.sample(run, "x"))


def tbptt_overrides(corpus: Path, **extra: object) -> list[str]:
    """A tiny LSTM on stream batches with its state carried: 8 tracks, a pass = 80 batches, 3 epochs of 30."""
    base = {
        "data.name": "text", "data.path": str(corpus), "data.block_size": 16, "data.batch_size": 8,
        "data.eval_batch_size": 8, "data.steps_per_epoch": 30, "data.sampling": "stream", "task.carry_state": "true",
        "model.n_layer": 2, "model.n_embd": 24, "model.hidden": 32, "model.dropout": 0.1, "train.max_steps": 90,
        "train.log_every": 10, "train.checkpoint_every": 0, "train.ema_decay": 0.9, "schedule.warmup": 5, "optim.lr": 3e-3,
        "train.threads": 1,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_truncated_bptt_resume_is_bit_identical(corpus: Path) -> None:
    from tests.engine.test_trainer import StopAt, assert_same_final_state, weights

    full = deepatlas.train("lstm-shakespeare-char", tbptt_overrides(corpus), progress=False)
    carried = weights(full)["task"]["carried"]  # the LSTM's (h, c), each (layers, tracks, hidden), in the checkpoint
    assert isinstance(carried, tuple) and [tuple(s.shape) for s in carried] == [(2, 8, 32)] * 2
    assert all("grad_norm" in row for row in full.metrics("log"))  # train.grad_clip (the recipe's 1.0) applies
    final = full.summary["final"]
    assert final["val/loss"] < final["val/window_loss"]  # the carried context helps, even after 90 tiny steps
    # Stop in the middle of epoch 2 (and before the pass restarts at batch 80), then resume.
    stopped = deepatlas.train("lstm-shakespeare-char", tbptt_overrides(corpus), callbacks=[StopAt(45)], progress=False)
    assert stopped.status == "interrupted" and weights(stopped)["state"]["batch_in_epoch"] == 15
    resumed = deepatlas.resume(stopped.id, progress=False)
    assert resumed.status == "completed"
    assert_same_final_state(full, resumed)
    assert all(torch.equal(a, b) for a, b in zip(carried, weights(resumed)["task"]["carried"], strict=True))


def test_carrying_a_transformer_state_is_refused_before_training(corpus: Path) -> None:
    with pytest.raises(deepatlas.ConfigError, match="task.carry_state: GPT has no recurrent state"):
        deepatlas.train("gpt-shakespeare-char", lm_overrides(corpus, **{"data.sampling": "stream", "task.carry_state": "true"}),
                        progress=False)
    assert deepatlas.list_runs() == []
    gpt = deepatlas.train("gpt-shakespeare-char", lm_overrides(corpus, **{"data.sampling": "stream", "train.max_steps": 5}),
                          progress=False)
    assert gpt.status == "completed" and "val/window_loss" not in gpt.summary["final"]  # stream batches alone are fine
