"""DenseNet details that parameter counts cannot see: connectivity, compression, layouts, errors."""

from __future__ import annotations

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.models.densenet import DenseLayer, Transition, cifar_densenet
from deepatlas.registry import create_model


def test_densenet121_transitions_halve_the_maps_and_the_side() -> None:
    with torch.device("meta"):
        model = create_model("densenet121")
    transitions = [m for m in model.blocks if isinstance(m, Transition)]
    # 64 + 6*32 = 256 -> 128, 128 + 12*32 = 512 -> 256, 256 + 24*32 = 1024 -> 512; 512 + 16*32 = 1024
    assert [t[2].out_channels for t in transitions] == [128, 256, 512]
    assert model.head.in_features == 1024
    assert model.stem[0].kernel_size == (7, 7) and isinstance(model.stem[-1], torch.nn.MaxPool2d)


def test_imagenet_layout_forward_shape() -> None:
    model = create_model("densenet121", growth_rate=4, stem_width=8, input_size=128).eval()  # narrow, same layout
    x = torch.randn(2, 3, 128, 128)
    assert model.stem(x).shape[-1] == 32  # the side / 4 before the first block
    assert model(x).shape == (2, 1000)
    assert model.forward_features(x).shape == (2, model.head.in_features)


def test_densenet_bc_on_fashion_mnist_images() -> None:
    model = create_model("densenet-bc-100-12", in_channels=1, input_size=28).eval()
    assert model.stem[0].kernel_size == (3, 3) and model.stem[0].out_channels == 24  # 2k, no pooling
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model.head.in_features == 342  # ((24 + 192) / 2 + 192) / 2 + 192 = 342 maps


def test_dense_layer_keeps_its_input_and_adds_k_maps() -> None:
    config = cifar_densenet(40, 12)
    layer = DenseLayer(20, config).eval()
    x = torch.randn(2, 20, 6, 6)
    y = layer(x)
    assert y.shape == (2, 32, 6, 6)
    assert torch.equal(y[:, :20], x)  # eq. 2: concatenation, not addition


def test_bottleneck_is_bn_size_times_growth_rate() -> None:
    model = create_model("densenet-bc-100-12", bn_size=2)
    layer = model.blocks[0][0]
    assert layer.body[2].out_channels == 24 and layer.body[-2].kernel_size == (3, 3)


def test_dropout_follows_every_convolution_but_the_first() -> None:
    model = create_model("densenet-bc-100-12", dropout=0.2)
    drops = sum(isinstance(m, torch.nn.Dropout) for m in model.modules())
    assert drops == 3 * 16 * 2 + 2  # two per bottleneck layer, one per transition
    assert not any(isinstance(m, torch.nn.Dropout) for m in create_model("densenet-bc-100-12").modules())


def test_stem_follows_the_input_size() -> None:
    with torch.device("meta"):
        small = create_model("densenet121", input_size=28)
    assert small.stem[0].kernel_size == (3, 3) and len(small.stem) == 1


def test_cifar_depth_must_fit_the_layout() -> None:
    with pytest.raises(ConfigError, match="6n\\+4"):
        cifar_densenet(101, 12)
    with pytest.raises(ConfigError, match="3n\\+4"):
        cifar_densenet(41, 12, bc=False)


def test_invalid_configs_fail_with_the_key() -> None:
    with pytest.raises(ConfigError, match="model.compression: must be > 0"):
        create_model("densenet121", compression=0.0)
    with pytest.raises(ConfigError, match="model.growth_rate"):
        create_model("densenet121", growth_rate=0)
    with pytest.raises(ConfigError, match=r"model.input_size: .* at least 29x29 .* stem=cifar"):
        create_model("densenet121", stem="imagenet", input_size=28)
    smallest = create_model("densenet121", stem="imagenet", input_size=29, growth_rate=2, stem_width=4).eval()
    assert smallest(torch.randn(1, 3, 29, 29)).shape == (1, 1000)  # 29 -> 15 -> 8 -> 4, 2, 1
