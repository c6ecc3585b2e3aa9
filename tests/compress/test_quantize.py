"""int8 quantization: outputs close to the float network's, exact restore from a run, clear errors."""

from __future__ import annotations

import re

import pytest
import torch

import deepatlas
from deepatlas.compress import quantize as Q
from deepatlas.compress.pipeline import quantize_run
from deepatlas.errors import ConfigError
from deepatlas.registry import create_model
from tests.conftest import tiny_recipe


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest error relative to the spread of the float outputs."""
    return float((a - b).abs().max() / b.std())


def test_dynamic_int8_of_an_mlp_is_close_to_float_and_uses_int8_layers() -> None:
    model = create_model("mlp", width=64, in_channels=1, input_size=8).eval()
    q = Q.dynamic(model)
    assert sum(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in q.modules()) == 3  # 2 hidden + head
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        assert _close(q(x), model(x)) < 0.1


class _Tagger(torch.nn.Module):  # an nn.LSTM and a linear read-out
    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.out = torch.nn.LSTM(8, 32, num_layers=2, batch_first=True), torch.nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(x)[0])


def test_dynamic_int8_of_an_lstm() -> None:
    model = _Tagger().eval()
    q = Q.dynamic(model)
    assert type(q.lstm).__module__.startswith("torch.ao.nn.quantized.dynamic") and "LSTM" in type(q.lstm).__name__
    x = torch.randn(4, 12, 8)
    with torch.no_grad():
        assert _close(q(x), model(x)) < 0.1


def test_static_int8_of_a_resnet_is_close_to_float_and_restores_exactly() -> None:
    model = create_model("resnet20", layers=(1, 1, 1), in_channels=1, num_classes=10, input_size=16).eval()
    x = torch.randn(64, 1, 16, 16)
    prepared = Q.prepare(model, (x[:1],))
    assert Q.calibrate(prepared, [(x[i : i + 16],) for i in range(0, 64, 16)], limit=3) == 48
    q = Q.convert(prepared)
    assert any("QuantizedConv" in type(m).__name__ or "ConvReLU2d" in type(m).__name__ for m in q.modules())
    with torch.no_grad():
        assert _close(q(x), model(x)) < 0.15
        again = Q.restore(model, "static", Q.observer_state(prepared), (x[:1],))
        assert torch.equal(again(x), q(x))  # the saved observers give back the very same int8 network


def test_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"--mode: 'statc'.*Did you mean 'static'"):
        Q.check_mode("statc")
    with pytest.raises(ConfigError, match=r"--mode dynamic: Sequential has no Linear, LSTM or GRU layer"):
        Q.dynamic(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)))


@pytest.mark.parametrize("mode", ["static", "dynamic", "qat"])
def test_a_quantized_run_is_linked_to_its_parent_and_loads_as_int8(mode: str) -> None:
    run = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), progress=False)
    child = quantize_run(run.id, mode, calibration_batches=2, qat_epochs=1)
    s = child.summary
    assert s["lineage"] == {"parent": run.id, "kind": "quantize", "mode": mode, "backend": "x86", **(
        {"calibration_examples": 128} if mode == "static" else {"qat_epochs": 1} if mode == "qat" else {})}
    parent_acc = run.summary["eval"]["test"]["accuracy"]
    assert abs(s["eval"]["test"]["accuracy"] - parent_acc) < 0.05
    predictor, float_predictor = deepatlas.load(child.id), deepatlas.load(run.id)
    from deepatlas.compress.measure import footprint

    assert s["compression"]["size_bytes"] < 0.75 * footprint(float_predictor.model).size_bytes  # int8 weights (+ serialization overhead)
    assert not any(type(m) is torch.nn.Linear for m in predictor.model.modules())  # every linear layer runs in int8
    from deepatlas.data import load_dataset

    x = next(iter(load_dataset(run.config.data).eval_batches("test", torch.device("cpu"))))[0]
    with torch.no_grad():
        agree = (predictor.model(x).argmax(-1) == float_predictor.model(x).argmax(-1)).float().mean()
    assert agree >= 0.85  # the int8 network predicts what the float one does
    assert deepatlas.evaluate(child.id)["metrics"]["accuracy"] == pytest.approx(s["eval"]["test"]["accuracy"])
    c = s["compression"]  # latency measured beside the parent's, at batch 1 and 64 (the digits test split has 360)
    assert set(c["latency_ms"]) == set(c["parent_latency_ms"]) == {"1", "64"}
    assert all(v > 0 for v in (*c["latency_ms"].values(), *c["parent_latency_ms"].values()))


def test_cli_quantize_shows_the_change_from_the_parent_and_both_latencies() -> None:
    from typer.testing import CliRunner

    from deepatlas.cli import app

    run = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), progress=False)
    result = CliRunner().invoke(app, ["quantize", run.id, "--mode", "dynamic"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "change" in result.output and "ms/64 (parent)" in result.output
    child = next(line for line in result.output.splitlines() if "int8-dynamic" in line)
    assert re.search(r"[+-]\d\.\d{4}", child) and re.search(r"\d+\.\d \(\d+\.\d\)", child), child
