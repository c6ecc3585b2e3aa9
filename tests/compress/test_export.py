"""Exports reproduce the original network: ONNX in onnxruntime, torch.export and TorchScript loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepatlas.compress.export import ExportError, check_format, write_artifact
from deepatlas.errors import ConfigError
from deepatlas.registry import create_model
from deepatlas.tasks.base import ExportInputs

pytest.importorskip("onnxruntime")

IMAGE = {"batch": ExportInputs((torch.randn(6, 1, 28, 28),), ("input",), ({0: "batch"},))}

# every image-classifier family in a tiny configuration
CLASSIFIERS = {
    "mlp": dict(depth=2, width=32),
    "lenet5": {},
    "resnet20": dict(layers=(1, 1, 1)),
    "vit-mini": dict(dim=32, depth=2, heads=2, mlp_dim=64),
    "se-resnet50": dict(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), stem_width=8, drop_path=0.1),
    "densenet-bc-100-12": dict(growth_rate=4, stem_width=8, block_config=(2, 2, 2)),
    "mobilenetv2-small": dict(width_mult=0.25, last_channel=32),
    "efficientnet-b0": dict(width_mult=0.25, depth_mult=0.5, head_width=32),
}


def _image_model(name: str) -> torch.nn.Module:
    return create_model(name, in_channels=1, num_classes=10, input_size=28, **CLASSIFIERS[name]).eval()


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_onnx_of_every_image_classifier_reproduces_the_outputs_in_onnxruntime(name: str, tmp_path: Path) -> None:
    check = write_artifact(_image_model(name), IMAGE["batch"], "onnx", tmp_path, name)
    assert (tmp_path / "model.onnx").is_file() and check.runtime.startswith("onnxruntime")
    assert check.batch_sizes == (6, 2)  # the batch dimension is dynamic: a batch of another size runs too
    assert check.max_abs_error < 1e-4


def test_onnx_of_gpt_reproduces_the_logits(tmp_path: Path) -> None:
    model = create_model("gpt-tiny", vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32).eval()
    tokens = torch.randint(0, 65, (4, 16))
    check = write_artifact(model, ExportInputs((tokens,), ("tokens",), ({0: "batch"},)), "onnx", tmp_path, "gpt")
    assert check.batch_sizes == (4, 1) and check.max_abs_error < 1e-4


def test_onnx_of_a_gcn_reproduces_the_node_logits_with_dynamic_nodes_and_edges(tmp_path: Path) -> None:
    model = create_model("gcn", in_channels=8, num_classes=3, hidden=16, sparse_features=False, propagation="scatter").eval()
    x, edges = torch.randn(12, 8), torch.randint(0, 12, (2, 30))
    inputs = ExportInputs((x, edges), ("x", "edge_index"), ({0: "nodes"}, {1: "edges"}))
    check = write_artifact(model, inputs, "onnx", tmp_path, "gcn")
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / check.file), providers=["CPUExecutionProvider"])
    x2, e2 = torch.randn(20, 8), torch.randint(0, 20, (2, 50))  # another graph: other numbers of nodes and edges
    got = session.run(None, {"x": x2.numpy(), "edge_index": e2.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), model(x2, e2), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("fmt", ["exported-program", "torchscript"])
def test_torch_export_and_torchscript_reproduce_a_resnet(fmt: str, tmp_path: Path) -> None:
    check = write_artifact(_image_model("resnet20"), IMAGE["batch"], fmt, tmp_path, "resnet20")
    assert (tmp_path / check.file).is_file() and check.max_abs_error < 1e-4 and check.batch_sizes == (6, 2)


def test_an_export_that_disagrees_is_refused_and_not_written(tmp_path: Path) -> None:
    class Noisy(torch.nn.Module):  # a different output at every call: no export can match it
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) + torch.rand(1).item()

    with pytest.raises(ExportError, match=r"noisy \(torchscript\).*differ"):
        write_artifact(Noisy(), IMAGE["batch"], "torchscript", tmp_path, "noisy")
    assert not (tmp_path / "model.torchscript.pt").exists()


def test_a_model_that_cannot_export_names_itself_and_why(tmp_path: Path) -> None:
    class Branchy(torch.nn.Module):  # data-dependent control flow: torch.export cannot trace it
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(ExportError, match=r"^branchy \(exported-program\): cannot be exported \(\w+"):
        write_artifact(Branchy(), IMAGE["batch"], "exported-program", tmp_path, "branchy")


def test_unknown_format_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"--format: 'onx' is not an export format \(one of: exported-program, folder, onnx, torchscript\)\. Did you mean 'onnx'"):
        check_format("onx")


def test_cli_exports_a_trained_run_to_onnx_checked_on_its_data(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import deepatlas
    from deepatlas.cli import app
    from tests.conftest import tiny_recipe

    run = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), progress=False)
    result = CliRunner().invoke(app, ["export", run.id, "-o", str(tmp_path / "out"), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert "checked" in result.output and "onnxruntime" in result.output
    manifest = json.loads((tmp_path / "out" / "deepatlas-export.json").read_text())
    assert manifest["artifacts"]["onnx"]["max_abs_error"] < 1e-4
    assert deepatlas.load(tmp_path / "out").predict(torch.zeros(2, 1, 8, 8).numpy()) is not None  # the folder still loads


def test_onnx_of_a_gat_traces_the_scatter_path_and_reproduces_the_fused_one(tmp_path: Path) -> None:
    # Eager GAT runs the fused CSR Function; an export traces the equal scatter path instead.
    model = create_model("gat", in_channels=8, num_classes=3, hidden=4, heads=2, sparse_features=False).eval()
    x, edges = torch.randn(12, 8), torch.randint(0, 12, (2, 30))
    inputs = ExportInputs((x, edges), ("x", "edge_index"), ({0: "nodes"}, {1: "edges"}))
    check = write_artifact(model, inputs, "onnx", tmp_path, "gat")
    assert check.max_abs_error < 1e-4
