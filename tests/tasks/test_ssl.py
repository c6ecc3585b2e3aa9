"""The ssl task: frozen-feature probes with known answers, a tiny run that learns, exact resume, figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import deepatlas
from deepatlas.engine import load_checkpoint
from deepatlas.errors import ConfigError
from deepatlas.metrics.representation import fit_linear_probe, knn_accuracy, knn_predict
from tests.engine.test_trainer import StopAt

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY = ["data.name=digits", "data.batch_size=64", "train.epochs=3", "train.log_every=5", "train.threads=1",
        "train.checkpoint_every=0"]


def blobs(n: int, seed: int, shift: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[shift, 0.0, 0.0, 0.0], [0.0, shift, 0.0, 0.0], [0.0, 0.0, shift, 0.0]])
    return centres[y] + torch.randn(n, 4, generator=g), y


def test_linear_probe_separates_blobs_and_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = blobs(600, 0, shift=1.5)  # overlapping classes: the optimum is not trivially perfect
    xt, yt = blobs(600, 1, shift=1.5)
    l2 = 1e-2
    probe = fit_linear_probe(x, y, 3, l2=l2, iterations=500)
    z = ((x.double() - probe.mean) / probe.std).numpy()
    zt = ((xt.double() - probe.mean) / probe.std).numpy()
    # the same objective: sklearn minimises C sum CE + |W|^2 / 2, ours mean CE + l2 |W|^2 / 2
    ref = LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=5000).fit(z, y.numpy())
    ours = torch.softmax(probe.logits(xt), 1).numpy()
    np.testing.assert_allclose(ours, ref.predict_proba(zt), atol=1e-4)
    assert probe.accuracy(xt, yt) == pytest.approx(ref.score(zt, yt.numpy()), abs=1e-9)
    assert 0.7 < probe.accuracy(xt, yt) < 1.0
    far, _ = blobs(300, 2, shift=10.0)
    assert fit_linear_probe(far, y[:300], 3).accuracy(*blobs(300, 3, shift=10.0)) == 1.0


def test_knn_weighted_and_majority_votes() -> None:
    bank = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    q = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert knn_predict(bank, labels, q, 2, k=2).tolist() == [0, 1]
    # k = 5 majority: class 1 (three votes) everywhere; weighted by exp(cos / 0.07) the near class wins
    assert knn_predict(bank, labels, q, 2, k=5, weighted=False).tolist() == [1, 1]
    assert knn_predict(bank, labels, q, 2, k=5, weighted=True).tolist() == [0, 1]
    x, y = blobs(300, 0, shift=10.0)
    assert knn_accuracy(x, y, *blobs(300, 1, shift=10.0), 3) == 1.0


def test_a_tiny_simclr_run_learns_and_is_scored_by_the_probes() -> None:
    run = deepatlas.train(str(RECIPES / "simclr-fashion-mnist.yaml"), [*TINY, "model.encoder=lenet5"], progress=False)
    assert run.status == "completed"
    losses = [row["train/loss"] for row in run.metrics("epoch")]
    assert losses[-1] < losses[0]
    test = run.summary["eval"]["test"]
    assert {"loss", "linear_probe", "knn"} <= test.keys()
    assert test["linear_probe"] > 0.8 and test["knn"] > 0.5  # ten digit classes: chance is 0.1
    assert (run.path / "calibration.safetensors").exists()


def test_mae_run_saves_reconstructions() -> None:
    overrides = [*TINY, "train.epochs=1", "model.patch_size=2", "model.dim=32", "model.depth=1", "model.heads=2",
                 "model.decoder_dim=16", "model.decoder_heads=2"]
    run = deepatlas.train(str(RECIPES / "mae-fashion-mnist.yaml"), overrides, progress=False)
    assert run.status == "completed"
    assert (run.path / "mae-reconstructions-test.png").stat().st_size > 0


def weights(run: Any) -> dict[str, Any]:
    return load_checkpoint(run.checkpoint("last"))


def test_moco_resume_is_bit_identical_with_its_queue_and_key_encoder() -> None:
    overrides = [*TINY, "train.epochs=2", "model.encoder=lenet5", "model.queue_size=100", "train.test=false"]
    recipe = str(RECIPES / "moco-fashion-mnist.yaml")
    full = deepatlas.train(recipe, overrides, progress=False)
    stopped = deepatlas.train(recipe, overrides, callbacks=[StopAt(9)], progress=False)  # mid-epoch
    assert stopped.status == "interrupted"
    resumed = deepatlas.resume(stopped.id, progress=False)
    a, b = weights(full)["model"], weights(resumed)["model"]
    assert {"queue", "queue_ptr"} <= a.keys() and any(k.startswith("key_encoder.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_bad_configurations_fail_with_one_line() -> None:
    with pytest.raises(ConfigError, match="data.normalize"):
        deepatlas.train(str(RECIPES / "simclr-fashion-mnist.yaml"), [*TINY, "data.normalize=true"], progress=False)
    with pytest.raises(ConfigError, match="ssl task trains a self-supervised model"):
        deepatlas.train("quickstart", ["task.name=ssl", "data.normalize=false", "train.epochs=1"], progress=False)


def test_byol_tau_schedule_is_bound_to_the_runs_length() -> None:
    """model.tau_steps left null takes the run's optimizer steps, so tau reaches 1 as training ends (BYOL's schedule)."""
    overrides = [*TINY, "train.epochs=1", "model.encoder=lenet5", "model.proj_hidden=16", "model.proj_dim=8", "train.test=false",
                 "data.limit=256", "train.log_every=1"]
    run = deepatlas.train(str(RECIPES / "byol-fashion-mnist.yaml"), overrides, progress=False)
    logs = run.metrics("log")
    assert run.config.model.options.tau_steps == logs[-1]["step"] == 4  # the run's optimizer steps
    taus = [row["tau"] for row in logs]  # tau of steps k = 0..3 of K = 4: 1 - 0.004 (cos(pi k / 4) + 1) / 2
    assert taus == pytest.approx([1 - 0.004 * (math.cos(math.pi * k / 4) + 1) / 2 for k in range(4)], abs=1e-6)
    constant = deepatlas.train(str(RECIPES / "byol-fashion-mnist.yaml"), [*overrides, "model.tau_schedule=constant"], progress=False)
    assert [row["tau"] for row in constant.metrics("log")] == pytest.approx([0.996] * 4)
