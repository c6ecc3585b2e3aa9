"""The segmentation U-Net (Ronneberger et al. 2015): parameter counts by construction, output shapes, options."""

from __future__ import annotations

import pytest
import torch

from deepatlas.models import count_parameters
from deepatlas.registry import create_model


def params(**overrides: object) -> int:
    with torch.device("meta"):
        return count_parameters(create_model("unet-seg", **overrides))


def test_preset_is_the_common_padded_batch_norm_unet() -> None:
    # milesial/Pytorch-UNet, UNet(n_channels=3, n_classes=2, bilinear=False): 31,037,698 parameters
    assert params() == 31_037_698
    assert params(bilinear=True) == 17_263_042  # bilinear up-sampling, the bottom and decoder widths halved


def test_the_papers_network_unpadded_without_batch_norm() -> None:
    """Figure 1: one input channel, two classes, valid convolutions with biases; a 572x572 tile gives a 388x388 map."""
    assert params(in_channels=1, batch_norm=False, padding=False) == 31_030_658
    with torch.device("meta"):
        model = create_model("unet-seg", in_channels=1, batch_norm=False, padding=False)
        assert model(torch.empty(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_widths_double_per_level_and_the_count_scales_with_width_squared() -> None:
    model = create_model("unet-seg", base_width=8, depth=3)
    assert [block.block[0].out_channels for block in model.down] == [16, 32, 64]
    assert model.up[0].up.out_channels == 32  # the 2x2 up-convolution halves the channels
    # every convolution but the first and the head has width^2 weights: quartered at half the width
    ratio = params() / params(base_width=32)
    assert 3.95 < ratio < 4.0


@pytest.mark.parametrize("options", [{}, {"bilinear": True}, {"batch_norm": False}])
@pytest.mark.parametrize("size", [(64, 64), (28, 30), (17, 33)])
def test_padded_output_has_the_input_size_for_any_side(options: dict[str, object], size: tuple[int, int]) -> None:
    model = create_model("unet-seg", in_channels=3, num_classes=5, base_width=4, depth=3, **options).eval()
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)
    assert torch.isfinite(out).all()



def test_the_unpadded_unet_names_the_smallest_image_it_can_take() -> None:
    from deepatlas.errors import ConfigError
    from deepatlas.models.segmentation import smallest_valid_side, valid_side

    assert valid_side(572, 4) == 388  # the paper's Figure 1
    model = create_model("unet-seg", padding=False, base_width=2, depth=2, in_channels=1, batch_norm=False).eval()
    side = smallest_valid_side(2)
    with torch.no_grad():
        assert model(torch.randn(1, 1, side, side)).shape[-1] == valid_side(side, 2) > 0
        with pytest.raises(ConfigError, match=rf"model[.]padding=false: .* depth 2 needs images of at least {side} pixels"):
            model(torch.randn(1, 1, side - 1, side - 1))
