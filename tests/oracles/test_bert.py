"""Our BERT encoder against Hugging Face's BertModel with copied weights."""

from __future__ import annotations

import pytest
import torch

from deepatlas.registry import create_model
from tests.oracles.hf import bert_to_deepatlas

transformers = pytest.importorskip("transformers", reason="oracle tests need `pip install -e .[dev]`")


def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(
        vocab_size=99, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=40, pad_token_id=0,
    )
    hf = transformers.BertModel(hf_config).eval()
    ours = create_model(
        "bert-base", vocab_size=99, hidden=64, n_layer=3, n_head=4, intermediate=128, max_position=40,
    ).eval()
    missing, unexpected = ours.load_state_dict(bert_to_deepatlas(hf.state_dict(), 3), strict=False)
    assert not unexpected
    assert all(k.startswith(("mlm_", "classifier")) for k in missing)  # heads HF's BertModel does not have
    return ours, hf


def test_hidden_states_and_pooled_output_equal_bert_model() -> None:
    ours, hf = pair()
    ids = torch.randint(1, 99, (3, 20))
    segments = torch.randint(0, 2, (3, 20))
    with torch.no_grad():
        expected = hf(ids, token_type_ids=segments)
        hidden = ours.encode(ids, segments)
        assert (hidden - expected.last_hidden_state).abs().max().item() < 1e-4
        assert (ours.pooled(hidden) - expected.pooler_output).abs().max().item() < 1e-4


def test_padding_is_masked_like_bert_model() -> None:
    ours, hf = pair()
    ids = torch.randint(1, 99, (2, 16))
    ids[0, 10:] = 0  # [PAD]
    attention = (ids != 0).long()
    with torch.no_grad():
        expected = hf(ids, attention_mask=attention).last_hidden_state
        got = ours.encode(ids)
    keep = attention.bool()
    assert (got[keep] - expected[keep]).abs().max().item() < 1e-4
