"""Shared fixtures. Tests are fast (tiny configs) and never touch ./runs or ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from deepatlas.data.sources import FASHION_MNIST_SYSTEM_DIR


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist every worker gets one thread: the workers already use the cores.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPATLAS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DEEPATLAS_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)


def fashion_mnist_available() -> bool:
    roots = [os.environ.get("DEEPATLAS_DATA_DIR", ""), str(FASHION_MNIST_SYSTEM_DIR)]
    return any(
        (Path(r) / n).exists() or (Path(r) / "fashion-mnist" / n).exists()
        for r in roots if r
        for n in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")
    )


@pytest.fixture
def fashion_mnist() -> None:
    """Fashion-MNIST must be present in CI (.ci/run installs it); elsewhere the test is skipped."""
    if not fashion_mnist_available():
        if os.environ.get("CI"):
            pytest.fail("Fashion-MNIST is missing: .ci/run must install dataset-fashion-mnist")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def tiny_recipe(**overrides: object) -> list[str]:
    """Overrides that make the quickstart recipe train in about a second."""
    base = {
        "train.epochs": 2, "train.log_every": 5, "data.batch_size": 64, "model.width": 64, "optim.lr": 0.01,
        "train.checkpoint_every": 0,
    }
    base.update(overrides)
    if "model.name" in overrides:
        del base["model.width"]  # an MLP key
    return [f"{k}={v}" for k, v in base.items()]


def planetoid_source() -> Path | None:
    root = os.environ.get("DEEPATLAS_DATA_DIR")
    if not root:
        return None
    for folder in (Path(root) / "planetoid", Path(root)):
        if (folder / "ind.cora.x").is_file():
            return folder
    return None


@pytest.fixture
def planetoid_dir() -> Path:
    """Folder of the Planetoid raw files: required in CI, skipped elsewhere when absent."""
    folder = planetoid_source()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("Planetoid files missing: set DEEPATLAS_DATA_DIR to the shared data folder")
        pytest.skip("Planetoid files not found (set DEEPATLAS_DATA_DIR to a folder with planetoid/ind.cora.x)")
    return folder
