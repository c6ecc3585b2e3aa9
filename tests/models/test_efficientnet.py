"""EfficientNet details: MBConv with SE and SiLU, stochastic depth, compound scaling as data."""

from __future__ import annotations

import math

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.models import count_parameters
from deepatlas.models.efficientnet import COMPOUND_SCALING, MBCONV_STAGES, MBConv
from deepatlas.nn.blocks import SqueezeExcitation
from deepatlas.registry import MODELS, create_model


def mbconvs(model: torch.nn.Module) -> list[MBConv]:
    return [m for m in model.modules() if isinstance(m, MBConv)]


def test_b0_forward_shape_and_table_1_layout() -> None:
    model = create_model("efficientnet-b0").eval()
    assert len(mbconvs(model)) == 16
    widths = [b.body[-2].out_channels for b in mbconvs(model)]
    assert widths == [16] + [24] * 2 + [40] * 2 + [80] * 3 + [112] * 3 + [192] * 4 + [320]
    kernels = [b.body[-4][0].kernel_size[0] for b in mbconvs(model)]  # the depthwise convolution, before SE
    assert kernels == [3] + [3] * 2 + [5] * 2 + [3] * 3 + [5] * 3 + [5] * 4 + [3]
    x = torch.randn(1, 3, 224, 224)
    assert model.features(x).shape == (1, 1280, 7, 7)
    assert model(x).shape == (1, 1000)
    assert any(isinstance(m, torch.nn.SiLU) for m in model.modules())


def test_squeeze_excitation_squeezes_to_a_quarter_of_the_block_input() -> None:
    model = create_model("efficientnet-b0")
    first, second = mbconvs(model)[:2]
    se = next(m for m in first.body if isinstance(m, SqueezeExcitation))
    assert (se.fc1.in_channels, se.fc1.out_channels) == (32, 8)  # 32 input channels, not the expanded ones
    se = next(m for m in second.body if isinstance(m, SqueezeExcitation))
    assert (se.fc1.in_channels, se.fc1.out_channels) == (96, 4)  # 16 * 6 expanded, 16 // 4 squeezed


def test_se_ratio_zero_removes_exactly_the_se_parameters() -> None:
    with torch.device("meta"):
        with_se, without = create_model("efficientnet-b0"), create_model("efficientnet-b0", se_ratio=0.0)
    se = sum(count_parameters(m) for m in with_se.modules() if isinstance(m, SqueezeExcitation))
    assert count_parameters(with_se) - count_parameters(without) == se > 0


def test_compound_scaling_rows_scale_depth_width_and_resolution() -> None:
    for name, (width, depth, resolution, dropout) in COMPOUND_SCALING.items():
        config = MODELS.get(f"efficientnet-{name}").config
        assert (config.width_mult, config.depth_mult, config.input_size, config.dropout) == (width, depth, resolution, dropout)
    with torch.device("meta"):
        b7 = create_model("efficientnet-b7")
    assert len(mbconvs(b7)) == sum(math.ceil(n * 3.1) for *_, n in MBCONV_STAGES) == 55
    assert b7.head.in_features == 2560 and b7.features[0][0].out_channels == 64


def test_stochastic_depth_rises_from_zero_on_the_residual_blocks() -> None:
    blocks = mbconvs(create_model("efficientnet-b0"))
    rates = [b.drop_path.p for b in blocks]
    assert rates == pytest.approx([0.2 * i / 16 if b.residual else 0.0 for i, b in enumerate(blocks)])
    assert rates[-2] == pytest.approx(0.2 * 14 / 16) and not blocks[-1].residual


def test_stochastic_depth_identity_in_eval_drops_in_train() -> None:
    torch.manual_seed(0)
    model = create_model("efficientnet-b0", width_mult=0.25, head_width=64, dropout=0.0, drop_path=0.5, input_size=32)
    reference = create_model("efficientnet-b0", width_mult=0.25, head_width=64, dropout=0.0, drop_path=0.0, input_size=32)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(8, 3, 32, 32)
    assert torch.equal(model.eval()(x), reference.eval()(x))
    model.train(), reference.train()
    torch.manual_seed(3)
    a = model(x)
    torch.manual_seed(3)
    assert torch.equal(a, model(x))
    assert not torch.allclose(a, reference(x))


def test_invalid_configs_fail_with_the_key() -> None:
    with pytest.raises(ConfigError, match="model.drop_path"):
        create_model("efficientnet-b0", drop_path=1.5)
    with pytest.raises(ConfigError, match="model.depth_mult"):
        create_model("efficientnet-b0", depth_mult=0.0)
