"""BERT: a bidirectional Transformer encoder (Devlin et al. 2019).

Embeddings = token + learned position + segment, then LayerNorm and dropout
(``positions="rotary"`` instead rotates queries and keys in every layer, Su et al. 2021:
attention then sees relative offsets from the first step, which lets a small
character-level model leave the unigram plateau of masked-LM training much sooner);
N post-LN Transformer layers (the original Transformer's encoder with GELU);
heads on top:
- masked-language-model head: dense + GELU + LayerNorm, then a projection onto
  the vocabulary tied to the token embedding, with its own bias;
- pooler: dense + tanh on the first ([CLS]) position, then a dropout + linear
  sequence classifier for fine-tuning.

BERT-base (12 layers, 768 wide, 12 heads, 3072 feed-forward, 30,522 WordPiece
tokens): 109,482,240 parameters in the encoder with its pooler (Hugging Face
``BertModel``), 110,106,428 with the pre-training heads as here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.attention import padding_mask
from ..nn.positional import Rotary
from ..nn.transformer import TransformerBlock
from ..registry import register_model
from ..schema import option


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = option(30522, "vocabulary size (from the tokenizer)", low=1)
    max_position: int = option(512, "longest input in tokens", low=1)
    type_vocab_size: int = option(2, "segment (sentence A/B) embeddings", low=1)
    n_layer: int = option(12, "encoder layers", low=1)
    n_head: int = option(12, "attention heads", low=1)
    hidden: int = option(768, "model width", low=1)
    intermediate: int = option(3072, "feed-forward width", low=1)
    dropout: float = option(0.1, "dropout on embeddings and residual branches", low=0.0, high=1.0)
    attention_dropout: float = option(0.1, "dropout on attention weights", low=0.0, high=1.0)
    eps: float = option(1e-12, "LayerNorm epsilon", low=0.0)
    num_classes: int = option(2, "classes of the sequence classifier (from the data)", low=1)
    pad_id: int = option(0, "token id of [PAD]: padded positions are masked out (from the tokenizer; -1: none)", low=-1)
    fused_attention: bool = option(True, "use torch's fused attention kernels")
    positions: Literal["learned", "rotary"] = option(
        "learned", "learned absolute positions (the paper) or rotary embeddings in every attention layer (Su et al. 2021)"
    )

    def validate(self, path: str) -> None:
        if self.hidden % self.n_head:
            raise ConfigError(f"{path}.n_head: hidden ({self.hidden}) must be divisible by n_head ({self.n_head}).")


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.hidden)
        self.position = nn.Embedding(c.max_position, c.hidden) if c.positions == "learned" else None
        self.token_type = nn.Embedding(c.type_vocab_size, c.hidden)
        self.norm = nn.LayerNorm(c.hidden, eps=c.eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, ids: torch.Tensor, token_type: torch.Tensor | None = None) -> torch.Tensor:
        t = ids.shape[1]
        if token_type is None:
            token_type = torch.zeros_like(ids)
        x = self.word(ids) + self.token_type(token_type)
        if self.position is not None:
            x = x + self.position(torch.arange(t, device=ids.device))
        return self.dropout(self.norm(x))  # (B, T, H)


class Bert(nn.Module):
    """``forward(ids)`` -> sequence-class logits; ``masked_lm(ids)`` -> per-token vocabulary logits."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = BertEmbeddings(c)
        self.layers = nn.ModuleList(
            TransformerBlock(
                c.hidden, c.n_head, c.intermediate, dropout=c.dropout, attention_dropout=c.attention_dropout,
                activation="gelu", norm_first=False, eps=c.eps, fused=c.fused_attention,
            )
            for _ in range(c.n_layer)
        )
        self.rotary = Rotary(c.hidden // c.n_head, c.max_position) if c.positions == "rotary" else None
        self.pooler = nn.Linear(c.hidden, c.hidden)
        self.mlm_transform = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.GELU(), nn.LayerNorm(c.hidden, eps=c.eps))
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.classifier = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.hidden, c.num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def encode(
        self, ids: torch.Tensor, token_type: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Contextual token representations (B, T, H). ``attention_mask`` (B, T): 1 for tokens, 0 for padding;
        by default positions holding ``pad_id`` are padding."""
        keep = (ids != self.config.pad_id) if attention_mask is None else attention_mask.bool()
        mask = padding_mask(~keep)  # always a mask: no host sync to check for padding
        x = self.embed(ids, token_type)
        for layer in self.layers:
            x = layer(x, mask=mask, rotary=self.rotary)
        return x

    def pooled(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.pooler(hidden[:, 0]))  # the [CLS] position, (B, H)

    def forward(self, ids: torch.Tensor, token_type: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.pooled(self.encode(ids, token_type)))  # (B, num_classes)

    def masked_lm(self, ids: torch.Tensor, token_type: torch.Tensor | None = None) -> torch.Tensor:
        h = self.mlm_transform(self.encode(ids, token_type))
        return h @ self.embed.word.weight.t() + self.mlm_bias  # (B, T, vocab), tied to the embedding


register_model("bert-base", Bert, BertConfig(), family="transformer", doc="BERT-base (Devlin et al. 2019): 12 layers, 768 wide")
register_model(
    "bert-large", Bert, BertConfig(n_layer=24, n_head=16, hidden=1024, intermediate=4096), family="transformer",
    doc="BERT-large: 24 layers, 1024 wide",
)
register_model(
    "bert-mini", Bert, BertConfig(vocab_size=68, max_position=128, n_layer=4, n_head=4, hidden=128, intermediate=512),
    family="transformer", doc="a 4-layer, 128-wide BERT for CPU experiments",
)
