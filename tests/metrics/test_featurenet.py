"""The fixed feature network of the sample-quality metrics: versioned, accurate, and its FD separates
real images from damaged ones; `deepatlas eval` reports FD / IS / coverage for a generative run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import deepatlas
from deepatlas.cli import app
from deepatlas.data.sources import fashion_mnist_file
from deepatlas.errors import CheckpointError
from deepatlas.metrics import generative
from deepatlas.metrics.generative import embed, load_feature_network, sample_quality


def _fashion(prefix: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = fashion_mnist_file(f"{prefix}-images-idx3-ubyte", None)[:n]
    labels = fashion_mnist_file(f"{prefix}-labels-idx1-ubyte", None)[:n]
    return torch.from_numpy(images.copy())[:, None].float() / 255, torch.from_numpy(labels.astype(np.int64))


@pytest.mark.usefixtures("fashion_mnist")
def test_the_shipped_network_classifies_fashion_mnist_test_images() -> None:
    net = load_feature_network()
    x, y = _fashion("t10k", 2000)
    features, probs = embed(net, x)
    assert features.shape == (2000, 128) and probs.shape == (2000, 10)
    assert np.allclose(probs.sum(1), 1.0)
    assert (probs.argmax(1) == y.numpy()).mean() >= 0.92


def test_a_changed_weights_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / "featurenet.safetensors"
    shutil.copy(generative.FEATURE_WEIGHTS, changed)
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(generative, "FEATURE_WEIGHTS", changed)
    with pytest.raises(CheckpointError, match="sha256"):
        load_feature_network()
    with pytest.raises(CheckpointError, match="missing"):
        load_feature_network(tmp_path / "absent.safetensors")


def test_wrong_image_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"\(1, 28, 28\)"):
        embed(load_feature_network(), torch.rand(2, 3, 32, 32))


@pytest.mark.usefixtures("fashion_mnist")
def test_frechet_distance_separates_real_from_damaged_and_coverage_sees_one_class() -> None:
    net = load_feature_network()
    test, test_y = _fashion("t10k", 4000)
    train, _ = _fashion("train", 1000)
    real, held = test[:1000], test[1000:2000]
    same = sample_quality(net, held, real, reference=train)
    noisy = sample_quality(net, (held + 0.3 * torch.randn_like(held)).clamp(0, 1), real)
    blurred = sample_quality(net, torch.nn.functional.avg_pool2d(held, 3, 1, 1), real)
    assert same["fd"] < 0.2 * noisy["fd"] and same["fd"] < 0.2 * blurred["fd"]
    assert same["fd_real"] < 0.2 * noisy["fd"]  # train vs test: the calibration floor
    assert same["coverage"] == 1.0 and same["is"] > 5.0
    shirts = sample_quality(net, test[test_y == 0][:300], real)  # only T-shirts: mode collapse
    # T-shirts are 90% T-shirt to the classifier, the rest shirts and pullovers: 4 of 10 classes reach 1%
    assert shirts["coverage"] <= 0.5 and shirts["class_share"][0] >= 0.8
    assert shirts["is"] < 2.0 and shirts["fd"] > 10 * same["fd"]


@pytest.mark.usefixtures("fashion_mnist")
def test_eval_of_a_vae_run_reports_sample_quality_and_pictures(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    run = deepatlas.train(
        "vae-fashion-mnist", ["data.limit=1024", "train.epochs=1", "task.iwae_k=2", "model.latent_dim=4"],
        progress=False, runs_dir=runs,
    )
    result = CliRunner().invoke(app, ["eval", run.id, "--runs-dir", runs, "--samples", "300", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # progress lines go to stderr
    metrics = report["metrics"]
    assert {"elbo", "iwae", "fd", "fd_real", "is", "coverage"} <= set(metrics)
    assert metrics["fd"] > metrics["fd_real"] > 0  # one epoch on 1024 images is far from the data
    assert len(report["sample_quality"]["class_share"]) == 10
    names = {Path(f).name for f in report["figures"]}
    assert {"vae-reconstructions-test.png", "vae-latent-grid-test.png", "vae-traversals-test.png", "samples-eval-test.png"} <= names
    assert all(Path(f).stat().st_size > 0 for f in report["figures"])
