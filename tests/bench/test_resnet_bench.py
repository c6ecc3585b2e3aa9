"""`deepatlas bench resnet`: ours alone with a clear message where torchvision does not import; equal networks where it does."""

from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

from deepatlas.bench import resnet
from deepatlas.cli import app

TINY = resnet.ResNetBench(models=("resnet20", "resnet18"), image_size=32, batch_size=2, cifar_batch_size=2,
                          calls=1, rounds=1, warmup=1, peak_n=128, bf16=True)


@pytest.fixture
def no_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)


def test_without_torchvision_ours_alone(no_torchvision: None) -> None:
    message = resnet.torchvision_missing()
    assert message is not None and message.startswith("torchvision rows skipped") and "deepatlas[bench]" in message
    rows = resnet.run(TINY, torch.device("cpu"))
    assert [(r["model"], r["precision"]) for r in rows] == [
        (m, p) for m in TINY.models for p in ("float32", "bf16 autocast")
    ]
    for r in rows:
        assert r["ours_images_per_s"] > 0 and 0 < r["ours_mfu"] < 5 and r["ratio"] is None and "torchvision_mfu" not in r


def test_command_says_why_rows_are_missing(no_torchvision: None) -> None:
    result = CliRunner().invoke(app, ["bench", "resnet", "--model", "resnet20", "--cifar-batch-size", "2", "--calls", "1", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert "torchvision rows skipped" in result.output and "resnet20" in result.output


def test_unknown_model_is_refused() -> None:
    result = CliRunner().invoke(app, ["bench", "resnet", "--model", "resnet21"])
    assert result.exit_code != 0 and "resnet21" in str(result.exception) and "resnet20-b" in str(result.exception)


def test_same_networks_as_torchvision() -> None:
    if resnet.torchvision_missing():
        pytest.skip("torchvision does not import beside this torch (see docs/BENCHMARKS.md for the venv that has it)")
    cpu = torch.device("cpu")
    for name, expected in (("resnet20-b", 272_474), ("resnet18", 11_689_512), ("resnet50", 25_557_032)):
        counts = [sum(p.numel() for p in resnet.model(name, side, cpu).parameters()) for side in ("ours", "torchvision")]
        assert counts == [expected, expected], name
    rows = resnet.run(TINY, cpu)
    assert all(r["torchvision_images_per_s"] > 0 for r in rows if r["model"] != "resnet20")
