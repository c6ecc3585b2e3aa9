"""CLIP's pieces that need no oracle: the symmetric loss by hand, the temperature, pooling, the encoders."""

from __future__ import annotations

import math

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.models.clip import CLIPConfig
from deepatlas.nn.losses import clip_loss
from deepatlas.registry import create_model

TINY = dict(
    embed_dim=8, patch_size=4, input_size=8, image_width=16, image_layers=1, image_heads=2, vocab_size=20,
    context_length=10, text_width=16, text_layers=1, text_heads=2, in_channels=1,
)


def test_symmetric_loss_is_the_mean_of_both_cross_entropies_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.0, -2.0, 0.5]])
    image_to_text = -sum(math.log(math.exp(logits[i, i]) / sum(math.exp(v) for v in logits[i].tolist())) for i in range(3)) / 3
    text_to_image = -sum(math.log(math.exp(logits[i, i]) / sum(math.exp(v) for v in logits[:, i].tolist())) for i in range(3)) / 3
    assert clip_loss(logits).item() == pytest.approx((image_to_text + text_to_image) / 2, abs=1e-6)
    assert image_to_text != pytest.approx(text_to_image)  # the two directions differ on this case: both count


def test_loss_is_lower_for_matched_pairs_and_needs_square_logits() -> None:
    assert clip_loss(10 * torch.eye(4)) < clip_loss(torch.zeros(4, 4))
    assert clip_loss(torch.zeros(4, 4)).item() == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="square"):
        clip_loss(torch.zeros(3, 4))


def test_temperature_starts_at_0_07_and_the_scale_is_clipped_at_100() -> None:
    model = create_model("clip-mini", **TINY)
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # exp(10) = 22026
    assert model.scale().item() == pytest.approx(100.0, rel=1e-6)
    image, text = torch.randn(2, 1, 8, 8), torch.randint(0, 19, (2, 10))
    cosine = model.encode_image(image) @ model.encode_text(text).t()
    torch.testing.assert_close(model(image, text), 100.0 * cosine)
    model(image, text).sum().backward()
    assert model.logit_scale.grad.item() == 0.0  # clipped: the temperature no longer moves up
    capped = create_model("clip-mini", **TINY, max_logit_scale=50.0)
    with torch.no_grad():
        capped.logit_scale.fill_(10.0)
    assert capped.scale().item() == pytest.approx(50.0, rel=1e-6)


def test_embeddings_are_unit_vectors_and_text_pools_at_end_of_text() -> None:
    model = create_model("clip-mini", **TINY).eval()
    tokens = torch.randint(1, 18, (3, 10))
    tokens[:, 4] = 19  # end-of-text, the highest id
    tokens[:, 5:] = 0
    z = model.encode_text(tokens)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3))
    changed = tokens.clone()
    changed[:, 6:] = 7  # after end-of-text: invisible to the causal state at position 4
    torch.testing.assert_close(model.encode_text(changed), z)
    changed[:, 2] = 3  # before it: seen
    assert not torch.allclose(model.encode_text(changed), z)
    torch.testing.assert_close(model.encode_image(torch.randn(2, 1, 8, 8)).norm(dim=-1), torch.ones(2))


def test_a_registered_cnn_as_the_image_encoder() -> None:
    model = create_model("clip-mini", **{**TINY, "image_encoder": "lenet5", "input_size": 28})
    assert model.image_projection.in_features == 84  # LeNet-5's penultimate width
    assert model(torch.randn(2, 1, 28, 28), torch.randint(0, 19, (3, 10))).shape == (2, 3)
    resnet = create_model("clip-mini", **{**TINY, "image_encoder": "resnet20", "input_size": 28})
    assert resnet.image_projection.in_features == 64
    with pytest.raises(ConfigError, match="image_encoder"):
        create_model("clip-mini", **{**TINY, "image_encoder": "gpt-tiny"})


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="patch_size"):
        create_model("clip-mini", **{**TINY, "patch_size": 3})
    with pytest.raises(ConfigError, match="text_heads"):
        create_model("clip-mini", **{**TINY, "text_heads": 3})


def test_vit_defaults_are_unchanged_and_clip_options_change_the_network() -> None:
    plain = create_model("vit-mini", patch_size=7)
    assert not hasattr(plain.norm_pre, "weight") and plain.patch_embed.bias is not None
    assert plain.norm.eps == 1e-6
    clip_vit = create_model("vit-mini", patch_size=7, pre_norm=True, patch_bias=False, activation="quick-gelu", norm_eps=1e-5)
    assert clip_vit.patch_embed.bias is None and clip_vit.norm_pre.eps == 1e-5
    x = torch.randn(2, 1, 28, 28)
    torch.manual_seed(0)
    a = create_model("vit-mini", patch_size=7, dropout=0.0).eval()
    torch.manual_seed(0)
    b = create_model("vit-mini", patch_size=7, dropout=0.0, activation="quick-gelu").eval()
    assert not torch.allclose(a(x), b(x))
    assert CLIPConfig().activation == "quick-gelu"
