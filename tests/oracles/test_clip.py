"""Our CLIP against open_clip's (open-clip-torch) with copied weights, and our loss against its ClipLoss."""

from __future__ import annotations

import math

import pytest
import torch

from deepatlas.models import count_parameters
from deepatlas.nn.losses import clip_loss
from deepatlas.registry import create_model
from tests.oracles.openclip import open_clip_modules, open_clip_to_deepatlas

VISION = dict(layers=2, width=64, head_width=16, patch_size=4, image_size=16)
TEXT = dict(context_length=12, vocab_size=50, width=48, heads=4, layers=2)
EMBED = 32


def pair(quick_gelu: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    model, _ = open_clip_modules()
    torch.manual_seed(0)
    theirs = model.CLIP(EMBED, model.CLIPVisionCfg(**VISION), model.CLIPTextCfg(**TEXT), quick_gelu=quick_gelu).eval()
    with torch.no_grad():  # away from the initial value, so that a wrong scale would show
        theirs.logit_scale.fill_(math.log(20.0))
    ours = create_model(
        "clip-vit-b32", embed_dim=EMBED, patch_size=4, image_width=64, image_layers=2, image_heads=4,
        vocab_size=50, context_length=12, text_width=48, text_layers=2, text_heads=4, input_size=16,
        activation="quick-gelu" if quick_gelu else "gelu",
    ).eval()
    ours.load_state_dict(open_clip_to_deepatlas(theirs.state_dict(), 2, 2), strict=True)
    return ours, theirs


def captions(batch: int = 5, length: int = 12, vocab: int = 50) -> torch.Tensor:
    """Random captions of different lengths: ids below end-of-text (vocab - 1), then end-of-text, then 0s."""
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, vocab - 1, (batch, length), generator=g)
    for i, end in enumerate(torch.randint(2, length, (batch,), generator=g).tolist()):
        tokens[i, end] = vocab - 1
        tokens[i, end + 1:] = 0
    return tokens


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_embeddings_and_logits_equal_open_clip(quick_gelu: bool) -> None:
    ours, theirs = pair(quick_gelu)
    images, text = torch.randn(4, 3, 16, 16), captions()
    with torch.no_grad():
        their_image, their_text, their_scale = theirs(images, text)  # normalised features and exp(logit_scale)
        image, tokens = ours.encode_image(images), ours.encode_text(text)
        torch.testing.assert_close(image, their_image, atol=1e-5, rtol=0)
        torch.testing.assert_close(tokens, their_text, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.encode_image(images, normalize=False), theirs.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.encode_text(text, normalize=False), theirs.encode_text(text), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(images, text), their_scale * their_image @ their_text.t(), atol=1e-5, rtol=0)


def test_every_weight_matters() -> None:
    """The comparison is not vacuous: perturbing any one of our parameters changes an output."""
    ours, _ = pair(quick_gelu=True)
    images, text = torch.randn(4, 3, 16, 16), captions()
    with torch.no_grad():
        reference = ours(images, text), ours.encode_image(images), ours.encode_text(text)
        for name, p in ours.named_parameters():
            saved = p.detach().clone()
            p.add_(1e-2 * torch.randn_like(p) + 1e-2)
            changed = ours(images, text), ours.encode_image(images), ours.encode_text(text)
            p.copy_(saved)
            gap = max((a - b).abs().max().item() for a, b in zip(reference, changed, strict=True))
            assert gap > 1e-5, f"perturbing {name} changed nothing"


def test_loss_equals_open_clip_clip_loss() -> None:
    _, loss = open_clip_modules()
    g = torch.Generator().manual_seed(2)
    image = torch.nn.functional.normalize(torch.randn(6, EMBED, generator=g), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(6, EMBED, generator=g), dim=-1)
    scale = torch.tensor(14.3)
    expected = loss.ClipLoss()(image, text, scale)
    torch.testing.assert_close(clip_loss(scale * image @ text.t()), expected, atol=1e-6, rtol=0)


def test_vit_b32_parameter_count_equals_open_clip() -> None:
    model, _ = open_clip_modules()
    vision = model.CLIPVisionCfg(layers=12, width=768, patch_size=32, image_size=224)  # open_clip's ViT-B-32.json
    text = model.CLIPTextCfg(context_length=77, vocab_size=49408, width=512, heads=8, layers=12)
    with torch.device("meta"):
        theirs = model.CLIP(512, vision, text, quick_gelu=True)
        ours = create_model("clip-vit-b32")
    assert count_parameters(ours) == count_parameters(theirs) == 151_277_313
