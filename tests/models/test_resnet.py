"""ResNet details that parameter counts cannot see."""

from __future__ import annotations

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.models.resnet import PadShortcut
from deepatlas.registry import create_model


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    x = torch.randn(2, 4, 6, 6)
    y = PadShortcut(4, 8, 2)(x)
    assert y.shape == (2, 8, 3, 3)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 4:]) == 0
    assert list(PadShortcut(4, 8, 2).parameters()) == []


def test_cifar_resnet_has_no_projection_parameters() -> None:
    model = create_model("resnet20")
    assert not any("shortcut" in name for name, _ in model.named_parameters())


def test_imagenet_resnet_uses_projections() -> None:
    model = create_model("resnet18", input_size=224)
    assert any("shortcut" in name for name, _ in model.named_parameters())


def test_stem_adapts_to_input_size() -> None:
    small = create_model("resnet18", input_size=32, num_classes=10)
    large = create_model("resnet18", input_size=224, num_classes=10)
    assert small.stem[0].kernel_size == (3, 3) and small.stem[0].stride == (1, 1)
    assert large.stem[0].kernel_size == (7, 7) and isinstance(large.stem[-1], torch.nn.MaxPool2d)
    # a 28x28 image keeps its resolution through the small stem
    assert small.stem(torch.randn(1, 3, 28, 28)).shape[-1] == 28


def test_zero_init_residual_makes_each_block_start_as_identity_plus_relu() -> None:
    model = create_model("resnet18", zero_init_residual=True, input_size=32, num_classes=10).eval()
    block = model.stages[0][0]
    x = torch.randn(2, 64, 8, 8).relu()
    assert torch.allclose(block(x), x)


def test_preact_network_ends_with_bn_relu() -> None:
    model = create_model("preact-resnet18", input_size=32, num_classes=10)
    assert isinstance(model.final_act[0], torch.nn.BatchNorm2d)


def test_resnext_uses_grouped_convolutions() -> None:
    model = create_model("resnext50-32x4d")
    assert model.stages[0][0].conv2.groups == 32
    assert model.stages[0][0].conv2.in_channels == 128


def test_invalid_configs_fail_with_the_key() -> None:
    with pytest.raises(ConfigError, match="model.groups"):
        create_model("resnet18", groups=4)
    with pytest.raises(ConfigError, match="model.widths"):
        create_model("resnet18", widths=(64, 128))
