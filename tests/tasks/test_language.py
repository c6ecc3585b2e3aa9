"""Language-modelling objectives: BERT's masking proportions and LM metrics."""

from __future__ import annotations

import math

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.tasks.language import (
    CausalLM,
    CausalLMConfig,
    MaskedLM,
    MaskedLMConfig,
    _lm_stats,
    mask_tokens,
)


def test_masking_follows_15_80_10_10() -> None:
    ids = torch.randint(3, 100, (400, 250))
    gen = torch.Generator().manual_seed(0)
    inputs, selected = mask_tokens(ids, MaskedLMConfig(), mask_id=0, vocab_size=100, generator=gen)
    n = selected.sum().item()
    assert n / ids.numel() == pytest.approx(0.15, abs=0.005)
    masked = (inputs[selected] == 0).float().mean().item()
    kept = (inputs[selected] == ids[selected]).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / 100, abs=0.01)  # 10% kept + random draws that hit the same token
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing else changes


def test_special_tokens_are_never_selected() -> None:
    ids = torch.full((10, 50), 7)
    _, selected = mask_tokens(ids, MaskedLMConfig(mask_prob=1.0), 0, 10, special_ids=(7,))
    assert not selected.any()


def test_masked_lm_needs_a_mask_token() -> None:
    with pytest.raises(ConfigError, match=r"\[MASK\]"):
        MaskedLM(MaskedLMConfig(), {"vocab_size": 10, "special_ids": {}})


def test_bits_per_character_and_perplexity() -> None:
    logits = torch.zeros(2, 3, 4)  # uniform over 4 tokens: 2 bits each
    targets = torch.tensor([[0, 1, 2], [3, 0, 1]])
    task = CausalLM(CausalLMConfig(), {"_char_lengths": torch.ones(4, dtype=torch.float64)})
    m = task.reduce(_lm_stats(logits, targets, torch.ones(4, dtype=torch.float64)))
    assert m["loss"] == pytest.approx(math.log(4)) and m["perplexity"] == pytest.approx(4.0)
    assert m["bpc"] == pytest.approx(2.0)
