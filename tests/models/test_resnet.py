"""ResNet details that parameter counts cannot see."""

from __future__ import annotations

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.models import count_parameters
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


@pytest.mark.parametrize(("name", "overrides"), [
    ("resnet50", {}), ("resnet20", {}), ("preact-resnet18", {"input_size": 32}), ("preact-resnet164", {}),
])
def test_squeeze_excitation_adds_exactly_its_parameters(name: str, overrides: dict) -> None:
    with torch.device("meta"):
        plain = create_model(name, **overrides)
        se = create_model(name, se_ratio=1 / 16, **overrides)
    assert not any(".se." in n for n, _ in plain.named_parameters())  # off by default: no module, same state dict
    blocks = [m for m in se.modules() if hasattr(m, "se")]
    expected = 0
    for block in blocks:
        c = block.se.fc1.in_channels
        r = max(1, round(c / 16))
        assert block.se.fc1.out_channels == r
        expected += 2 * c * r + r + c
    assert count_parameters(se) - count_parameters(plain) == expected
    if name == "resnet50":  # SE-ResNet-50: ResNet-50 + 2,530,992 (timm seresnet50: 28,088,024)
        assert expected == 2_530_992


def test_se_resnet50_preset_is_resnet50_with_reduction_16() -> None:
    with torch.device("meta"):
        preset = create_model("se-resnet50")
    assert preset.config.se_ratio == 1 / 16 and preset.config.layers == (3, 4, 6, 3)
    assert preset.stages[3][0].se.fc1.out_channels == 2048 // 16


def test_stochastic_depth_rises_linearly_over_the_blocks() -> None:
    model = create_model("resnet20", drop_path=0.5)
    rates = [m.drop_path.p for m in model.modules() if hasattr(m, "drop_path")]
    assert rates == pytest.approx([0.5 * block / 9 for block in range(1, 10)])  # 1 - p_l = l / L (1 - p_L), p_L = 0.5


def test_stochastic_depth_is_the_identity_in_evaluation_and_drops_in_training() -> None:
    torch.manual_seed(0)
    plain = create_model("resnet20", in_channels=1, input_size=16)
    dropping = create_model("resnet20", in_channels=1, input_size=16, drop_path=0.5)
    dropping.load_state_dict(plain.state_dict())  # no new parameters or buffers
    x = torch.randn(8, 1, 16, 16)
    plain.eval(), dropping.eval()
    assert torch.equal(plain(x), dropping(x))
    plain.train(), dropping.train()
    torch.manual_seed(1)
    a = dropping(x)
    torch.manual_seed(1)
    b = dropping(x)
    assert torch.equal(a, b)  # seeded
    assert not torch.allclose(a, plain(x))  # some residual branches were dropped


def test_dropped_branch_leaves_relu_of_the_shortcut() -> None:
    block = create_model("resnet20", drop_path=0.5).stages[2][-1].train()
    block.drop_path.p = 1.0  # always dropped (a config refuses p = 1: see the bounds test)
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(block(x), torch.relu(x))


def test_se_and_drop_path_bounds_fail_with_the_key() -> None:
    with pytest.raises(ConfigError, match="model.se_ratio"):
        create_model("resnet18", se_ratio=1.5)
    with pytest.raises(ConfigError, match="model.drop_path"):
        create_model("resnet18", drop_path=-0.1)
    with pytest.raises(ConfigError, match="model.drop_path: 1 would drop the last residual branch always"):
        create_model("resnet18", drop_path=1.0)
