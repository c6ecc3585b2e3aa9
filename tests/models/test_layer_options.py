"""SELU / PReLU activations, instance and weight normalisation in the MLP and VGG families (defaults unchanged)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepatlas.errors import ConfigError
from deepatlas.models.base import count_parameters
from deepatlas.nn import activation, apply_weight_norm, norm2d
from deepatlas.registry import create_model

SMALL_VGG = {"stages": (1, 1), "widths": (8, 16), "fc_width": 32, "in_channels": 1, "input_size": 8, "num_classes": 3}


def test_new_activations_are_the_torch_modules() -> None:
    assert isinstance(activation("selu"), nn.SELU)
    prelu = activation("prelu")
    assert isinstance(prelu, nn.PReLU) and float(prelu.weight.detach()) == pytest.approx(0.25)


@pytest.mark.parametrize(("options", "extra"), [
    ({"activation": "prelu"}, 2),  # one slope per hidden layer
    ({"activation": "selu", "dropout": 0.1, "init": "lecun"}, 0),
    ({"weight_norm": True}, 32 + 32 + 10),  # one g per output unit of each layer
])
def test_mlp_options_train_and_add_the_parameters_they_should(options: dict, extra: int) -> None:
    base = create_model("mlp", width=32, in_channels=1, input_size=8)
    model = create_model("mlp", width=32, in_channels=1, input_size=8, **options)
    assert count_parameters(model) == count_parameters(base) + extra
    x = torch.randn(16, 1, 8, 8)
    loss = model(x).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    if options.get("activation") == "selu":
        assert any(isinstance(m, nn.AlphaDropout) for m in model.modules())


def test_weight_norm_keeps_the_function_and_splits_direction_and_length() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    x = torch.randn(5, 6)
    before = layer(x)
    apply_weight_norm(layer)
    torch.testing.assert_close(layer(x), before)
    g, v = layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
    torch.testing.assert_close(layer.weight, g * v / v.norm(dim=1, keepdim=True))


def test_instance_norm_standardises_each_image_and_vgg_takes_it() -> None:
    norm = norm2d("instance", 3)
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    y = norm(x)
    torch.testing.assert_close(y.mean(dim=(2, 3)), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1:2], norm(x[1:2]))  # no batch statistics: an image alone gives the same
    base = create_model("vgg11", **SMALL_VGG)
    model = create_model("vgg11", **SMALL_VGG, instance_norm=True, activation="selu", weight_norm=True)
    assert count_parameters(model) == count_parameters(base) + 2 * (8 + 16) + (8 + 16 + 32 + 32 + 3)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ConfigError, match="instance_norm: one normalisation"):
        create_model("vgg11", **SMALL_VGG, instance_norm=True, batch_norm=True)
