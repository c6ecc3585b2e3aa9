"""Explanations: exact cases with known answers, the errors, and `deepatlas explain` on a trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import deepatlas
from deepatlas.cli import app
from deepatlas.data import load_dataset
from deepatlas.errors import ConfigError
from deepatlas.explain import explain, gradcam, integrated_gradients, saliency
from tests.conftest import tiny_recipe


def _linear(c: int = 1, h: int = 6, w: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, classes)).double()


def test_saliency_of_a_linear_model_is_its_weights() -> None:
    model = _linear()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    s = saliency(model, x, torch.tensor([2, 0]))
    torch.testing.assert_close(s[0].flatten(), model[1].weight[2].abs().detach())
    torch.testing.assert_close(s[1].flatten(), model[1].weight[0].abs().detach())


def test_integrated_gradients_of_a_linear_model_are_exact_and_complete() -> None:
    model = _linear()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    base = torch.full_like(x, 0.3)
    ig, delta = integrated_gradients(model, x, 1, baseline=base, steps=3)
    torch.testing.assert_close(ig.flatten(1), (x - base).flatten(1) * model[1].weight[1].detach())
    assert float(delta.abs().max()) < 1e-10  # completeness: sum IG = f(x) - f(x')
    with pytest.raises(ConfigError, match="quadrature"):
        integrated_gradients(model, x, 1, method="simpson")


def test_gradcam_is_equations_1_and_2_by_hand() -> None:
    class Corner(nn.Module):  # class 0 reads the top-left quarter of a conv map, class 1 the bottom-right
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.relu(self.conv(x))
            return torch.stack([a[:, :, :4, :4].sum((1, 2, 3)), a[:, :, 4:, 4:].sum((1, 2, 3))], dim=1)

    model = Corner().double()
    with torch.no_grad():
        model.conv.weight.fill_(1.0)
        model.conv.bias.zero_()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64) + 0.1
    cam0, cam1 = gradcam(model, x, 0, upsample=False)[0, 0], gradcam(model, x, 1, upsample=False)[0, 0]
    assert cam0.shape == (8, 8)
    # dS/dA^k is 1 on the class's quarter (16 of the 64 cells) and 0 elsewhere: alpha_k = 16/64 (eq. 1), L = ReLU(sum_k alpha_k A^k)
    a = torch.relu(model.conv(x))[0]
    torch.testing.assert_close(cam0, torch.relu((a * (16 / 64)).sum(0)).detach())
    torch.testing.assert_close(cam1, cam0)
    with pytest.raises(ConfigError, match="Grad-CAM needs a convolutional model"):
        gradcam(_linear(), torch.randn(1, 1, 6, 6, dtype=torch.float64))
    with pytest.raises(ConfigError, match="allowed: gradcam, integrated-gradients, rollout, saliency"):
        explain(model, x, "lime")


def test_cli_explain_writes_an_overlay(tmp_path: Path) -> None:
    run = deepatlas.train("quickstart", tiny_recipe(), progress=False)
    split = load_dataset(run.config.data).split("test")
    path = tmp_path / "digit.png"
    Image.fromarray((split.images[0, 0].numpy().astype(np.float64) * 255 / 16).round().astype(np.uint8)).save(path)
    runner = CliRunner()
    result = runner.invoke(app, ["explain", run.id, "--input", str(path), "--method", "saliency", "--target", "3"])
    assert result.exit_code == 0, result.output
    overlay = tmp_path / "digit-saliency.png"
    assert overlay.is_file() and Image.open(overlay).size[0] > 100 and "class 3" in result.output
    result = runner.invoke(app, ["explain", run.id, "--input", str(path), "--method", "integrated-gradients", "-o", str(tmp_path / "ig.png")])
    assert result.exit_code == 0 and (tmp_path / "ig.png").is_file()
    result = runner.invoke(app, ["explain", run.id, "--input", str(path), "--method", "gradcam"])  # an MLP: no feature map
    assert isinstance(result.exception, ConfigError) and "convolutional" in str(result.exception)
    result = runner.invoke(app, ["explain", run.id, "--input", str(path), "--target", "cat"])
    assert isinstance(result.exception, ConfigError) and "not a class of this run" in str(result.exception)


def test_recorded_attention_is_what_the_layer_applies_and_rollout_is_the_product() -> None:
    from deepatlas.explain import attention_rollout, record_attention, rollout
    from deepatlas.registry import create_model

    torch.manual_seed(0)
    vit = create_model("vit-mini", depth=2, dim=16, heads=2, mlp_dim=32, dropout=0.0).eval()
    x = torch.randn(2, 1, 28, 28)
    weights = record_attention(vit, x)
    assert len(weights) == 2 and weights[0].shape == (2, 2, 50, 50)  # 49 patches + [class]
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(2, 2, 50))
    # the recorded weights reproduce the first block's attention output (fused kernels keep none)
    block = vit.blocks[0]
    h = vit.patch_embed(x).flatten(2).transpose(1, 2)
    h = vit.norm_pre(torch.cat([vit.cls_token.expand(2, -1, -1), h], 1) + vit.pos_embed)
    attn = block.attn
    v = attn._heads(attn.qkv_proj(block.ln1(h)).split(attn.d_model, dim=-1)[2])
    y = attn.out_proj((weights[0] @ v).transpose(1, 2).reshape(2, 50, attn.d_model))
    torch.testing.assert_close(y, attn(block.ln1(h)), atol=1e-5, rtol=1e-4)
    # rollout: ((A2 + I)/2) ((A1 + I)/2), the head means, rows renormalised (they already sum to 1)
    eye = torch.eye(50)
    a1, a2 = (0.5 * w.mean(1) + 0.5 * eye for w in weights)
    torch.testing.assert_close(attention_rollout(weights), a2 @ a1)
    heat = rollout(vit, x)
    assert heat.shape == (2, 1, 28, 28) and bool((heat >= 0).all())
    with pytest.raises(ConfigError, match="no attention layer"):
        record_attention(_linear(), torch.randn(1, 1, 6, 6, dtype=torch.float64))


def test_most_confidently_wrong_examples_are_the_wrong_rows_by_confidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepatlas.tasks.classification import Classification, ClassificationConfig

    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, 3.0], [2.0, 0.0], [0.0, 9.0]])
    y = torch.tensor([0, 0, 0, 1, 1])  # wrong: rows 1 (p 0.73), 2 (p 0.95), 3 (p 0.88)

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return logits[x[:, 0, 0, 0].long()]

    shown: dict[str, object] = {}

    def capture(images, titles, path, title=""):
        shown["titles"] = titles
        return path

    monkeypatch.setattr("deepatlas.report.plots.plot_image_titles", capture)
    task = Classification(ClassificationConfig(), {"num_classes": 2, "class_names": ["cat", "dog"]})
    x = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 1, 4, 4).clone()
    task._confident_errors(Fixed(), (x, y), ["cat", "dog"], tmp_path / "w.png", "test")
    assert shown["titles"] == ["dog 0.95\n(true: cat)", "cat 0.88\n(true: dog)", "dog 0.73\n(true: cat)"]
