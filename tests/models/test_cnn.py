"""The classic CNNs: paper details and input-size handling."""

from __future__ import annotations

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.registry import create_model


def test_lenet5_pads_28x28_inputs_to_the_paper_geometry() -> None:
    model = create_model("lenet5", input_size=28)
    assert model.fc[0].in_features == 16 * 5 * 5
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_alexnet_grouping_and_lrn() -> None:
    model = create_model("alexnet")
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert sum(isinstance(m, torch.nn.LocalResponseNorm) for m in model.features) == 2


def test_alexnet_rejects_too_small_images_with_advice() -> None:
    with pytest.raises(ConfigError, match=r"at least 63x63.*data.resize"):
        create_model("alexnet", input_size=28)


def test_vgg_rejects_images_smaller_than_its_pooling() -> None:
    with pytest.raises(ConfigError, match="at least 32x32"):
        create_model("vgg16", input_size=28)


def test_vgg16_layer_structure() -> None:
    model = create_model("vgg16")
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) for c in convs)
    assert model.fc[0].in_features == 512 * 7 * 7


def test_googlenet_inception_widths_follow_table_1() -> None:
    model = create_model("googlenet")
    widths = [m.out_channels for m in model.inception if hasattr(m, "out_channels")]
    assert widths == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    assert model.inception[1].b5[1][0].kernel_size == (5, 5)  # a real 5x5, not torchvision's 3x3


def test_mlp_init_schemes_change_weight_scale() -> None:
    torch.manual_seed(0)
    he = create_model("mlp", init="he", width=512)
    xavier = create_model("mlp", init="xavier", width=512)
    w_he, w_x = he.body[0].weight, xavier.body[0].weight
    fan_in, fan_out = w_he.shape[1], w_he.shape[0]
    assert w_he.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    assert w_x.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)
    assert he.body[0].bias.abs().sum() == 0
