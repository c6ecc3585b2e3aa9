"""Our GPT against Hugging Face's GPT-2 with copied weights (transformers is a test-only dependency)."""

from __future__ import annotations

import pytest
import torch

from deepatlas.registry import create_model
from tests.oracles.hf import gpt2_to_deepatlas

transformers = pytest.importorskip("transformers", reason="oracle tests need `pip install -e .[dev]`")


def pair(**kw: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, n_positions=32, n_embd=64, n_layer=3, n_head=4)
    cfg.update(kw)
    hf_config = transformers.GPT2Config(
        **cfg, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = create_model(
        "gpt2", vocab_size=cfg["vocab_size"], block_size=cfg["n_positions"], n_embd=cfg["n_embd"],
        n_layer=cfg["n_layer"], n_head=cfg["n_head"],
    ).eval()
    missing, unexpected = ours.load_state_dict(gpt2_to_deepatlas(hf.state_dict(), cfg["n_layer"]), strict=True)
    assert not missing and not unexpected
    return ours, hf


@pytest.mark.parametrize("fused", [True, False])
def test_logits_equal_hugging_face_gpt2(fused: bool) -> None:
    ours, hf = pair()
    if not fused:
        for block in ours.blocks:
            block.attn.fused = False
    idx = torch.randint(0, 97, (3, 32))
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    assert (got - expected).abs().max().item() < 1e-4


def test_incremental_decoding_equals_hugging_face_cache() -> None:
    ours, hf = pair()
    prompt = torch.randint(0, 97, (2, 5))
    ours_tokens = torch.stack(list(ours.generate(prompt, 20, temperature=0)), dim=1)
    hf_tokens = hf.generate(
        prompt, max_new_tokens=20, do_sample=False, attention_mask=torch.ones_like(prompt), pad_token_id=0,
    )[:, 5:]
    assert torch.equal(ours_tokens, hf_tokens)
