"""``deepatlas bench bert``: masked-LM training throughput of our BERT against Hugging Face's BertModel.

Both sides are the same network at the same size: BERT's post-LN encoder (learned positions,
segment embeddings, exact GELU, dropout 0.1 on embeddings, residual branches and attention
weights) with the masked-LM head (dense + GELU + LayerNorm, decoder tied to the token
embedding, its own bias). Hugging Face's side is ``BertForMaskedLM`` (``BertModel`` under that
head) with its default SDPA attention; ours is :class:`deepatlas.models.bert.Bert`'s
``masked_lm``. The default size is ``bert-mini`` at the ``bert-mlm-shakespeare`` recipe's batch
(4 layers, 128 wide, 4 heads, 512 feed-forward, 68 characters, 32 sequences of 128 tokens).
A step: forward over the whole batch, cross-entropy on a fixed 15% of the positions, backward,
AdamW. The parameter counts are equal (:func:`param_counts`); rows as in bench.common.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DeepAtlasError
from ..registry import create_model
from .common import Build, Contender, Rounds, Setup, adamw, same_settings


@dataclass(frozen=True)
class BertBench(Rounds):
    n_layer: int = 4
    n_head: int = 4
    hidden: int = 128
    intermediate: int = 512
    vocab_size: int = 68
    seq_len: int = 128
    batch_size: int = 32
    mask_fraction: float = 0.15


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise DeepAtlasError("bench bert compares with Hugging Face: pip install 'deepatlas[bench]' (transformers).") from None
    return transformers


def hf_config(b: BertBench) -> Any:
    return _transformers().BertConfig(
        vocab_size=b.vocab_size, hidden_size=b.hidden, num_hidden_layers=b.n_layer, num_attention_heads=b.n_head,
        intermediate_size=b.intermediate, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_position_embeddings=b.seq_len, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
        attn_implementation="sdpa",
    )


def model(b: BertBench, side: str, device: torch.device) -> nn.Module:
    """``ours``: our Bert; ``hf``: transformers' BertForMaskedLM at the same configuration."""
    if side == "ours":
        return create_model(
            "bert-mini", vocab_size=b.vocab_size, max_position=b.seq_len, n_layer=b.n_layer, n_head=b.n_head,
            hidden=b.hidden, intermediate=b.intermediate, dropout=0.1, attention_dropout=0.1, positions="learned",
        ).to(device)
    return _transformers().BertForMaskedLM(hf_config(b)).to(device)


def param_counts(b: BertBench) -> dict[str, int]:
    """Parameters of: our encoder + pooler and BertModel; what our masked-LM step trains and BertForMaskedLM."""
    ours = model(b, "ours", torch.device("cpu"))
    count = lambda m, skip=(): sum(p.numel() for n, p in m.named_parameters() if not n.startswith(skip))  # noqa: E731
    return {
        "ours_encoder": count(ours, ("mlm_", "classifier")),
        "hf_bert_model": count(_transformers().BertModel(hf_config(b))),
        "ours_masked_lm": count(ours, ("pooler", "classifier")),
        "hf_masked_lm": count(model(b, "hf", torch.device("cpu"))),
    }


def builder(b: BertBench, device: torch.device) -> Build:
    """``build(side, setup, seed)`` on one fixed batch (tokens 1.., no padding; a fixed masked-LM target)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, b.vocab_size, (b.batch_size, b.seq_len), generator=gen).to(device)
    chosen = torch.rand(b.batch_size, b.seq_len, generator=gen).to(device) < b.mask_fraction
    labels = torch.where(chosen, torch.randint(1, b.vocab_size, ids.shape, generator=gen).to(device), -100)
    attention = torch.ones_like(ids)

    def build(side: str, setup: Setup, seed: int) -> Contender:
        torch.manual_seed(seed)
        m = model(b, side, device).train()

        def loss(net: nn.Module) -> torch.Tensor:
            logits = net.masked_lm(ids) if side == "ours" else net(input_ids=ids, attention_mask=attention).logits
            return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)

        return Contender(m, loss, adamw(m, setup, lr=1e-3))

    return build


def run(bench: BertBench | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """One row per precision (float32, bf16 autocast): tokens/s of both, ratio HF / ours time, MFU of both."""
    b = bench or BertBench()
    device = device or torch.device("cpu")
    return same_settings(builder(b, device), ("ours", "hf"), units=b.batch_size * b.seq_len, unit="tokens",
                         rounds=b, device=device)
