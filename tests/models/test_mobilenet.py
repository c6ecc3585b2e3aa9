"""MobileNetV2 details: inverted residuals, linear bottlenecks, width multiplier, the small-image layout."""

from __future__ import annotations

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.models.mobilenet import InvertedResidual
from deepatlas.registry import create_model


def blocks(model: torch.nn.Module) -> list[InvertedResidual]:
    return [m for m in model.modules() if isinstance(m, InvertedResidual)]


def test_table_2_layout_at_imagenet_size() -> None:
    model = create_model("mobilenetv2").eval()
    assert len(blocks(model)) == 17
    assert sum(b.residual for b in blocks(model)) == 10  # every block but the first of each row, where shapes agree
    x = torch.randn(1, 3, 224, 224)
    assert model.features(x).shape == (1, 1280, 7, 7)  # side / 32
    assert model(x).shape == (1, 1000)


def test_depthwise_convolutions_and_linear_bottlenecks() -> None:
    for block in blocks(create_model("mobilenetv2")):
        depthwise = [m for m in block.body.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(depthwise) == 1 and depthwise[0].groups == depthwise[0].in_channels == depthwise[0].out_channels
        assert isinstance(block.body[-1], torch.nn.BatchNorm2d)  # the projection has no activation
        assert any(isinstance(m, torch.nn.ReLU6) for m in block.body.modules())


def test_inverted_residual_adds_its_input_only_where_the_shape_is_kept() -> None:
    same, strided = InvertedResidual(8, 8, 1, 6).eval(), InvertedResidual(8, 8, 2, 6).eval()
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(same(x) - same.body(x), x)
    assert strided(x).shape == (2, 8, 3, 3)
    assert same.body[0][0].out_channels == 48  # expansion t = 6


def test_small_layout_keeps_fashion_mnist_resolution() -> None:
    model = create_model("mobilenetv2-small", in_channels=1, input_size=28).eval()
    x = torch.randn(2, 1, 28, 28)
    assert model.features[0][0].stride == (1, 1)
    assert model.features(x).shape[-1] == 4  # 28 / 8, rounded up
    assert model(x).shape == (2, 10)
    with torch.device("meta"):
        auto = create_model("mobilenetv2", input_size=28)
    assert auto.config.small and auto.features[0][0].stride == (1, 1)  # auto picks it below 112 pixels


def test_small_layout_has_the_same_weights() -> None:
    with torch.device("meta"):
        small = create_model("mobilenetv2", layout="small")
        large = create_model("mobilenetv2", layout="imagenet")
    assert {k: v.shape for k, v in small.state_dict().items()} == {k: v.shape for k, v in large.state_dict().items()}


def test_width_multiplier_rounds_channels_to_eight() -> None:
    with torch.device("meta"):
        narrow = create_model("mobilenetv2", width_mult=0.5)
        wide = create_model("mobilenetv2", width_mult=1.4)
    assert narrow.features[0][0].out_channels == 16 and narrow.head.in_features == 1280  # last layer kept below 1
    assert [b.body[-2].out_channels for b in blocks(narrow)][:2] == [8, 16]
    assert wide.features[0][0].out_channels == 48 and wide.head.in_features == 1792


def test_dropout_is_before_the_head_not_in_the_features() -> None:
    model = create_model("mobilenetv2-small", in_channels=1, input_size=28, dropout=0.9).train()
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(0)
    a = model.forward_features(x)
    torch.manual_seed(1)
    assert torch.equal(a, model.forward_features(x))
    assert model.drop.p == 0.9


def test_invalid_configs_fail_with_the_key() -> None:
    with pytest.raises(ConfigError, match="model.width_mult"):
        create_model("mobilenetv2", width_mult=0.0)
    with pytest.raises(ConfigError, match="model.layout"):
        create_model("mobilenetv2", layout="cifar")
