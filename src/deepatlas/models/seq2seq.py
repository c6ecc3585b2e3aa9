"""The encoder-decoder Transformer (Vaswani et al. 2017).

Encoder: N layers of self-attention + feed-forward. Decoder: N layers of masked
self-attention, attention over the encoder output, feed-forward. Post-LN as in the
paper (pre-LN available), sinusoidal positions, embeddings multiplied by
sqrt(d_model) and shared between source, target and the output projection
(Section 3.4, when source and target share a vocabulary). The base model: N = 6,
d_model = 512, 8 heads, d_ff = 2048, dropout 0.1 (Table 3).

Training uses teacher forcing: the decoder reads the target shifted right
(``[BOS] y_1 ... y_{n-1}``) and predicts ``y_1 ... y_n [EOS]``. Inference decodes
greedily or with beam search (beam 4, length penalty alpha = 0.6 in the paper,
the GNMT penalty ((5 + |Y|) / 6)^alpha), reusing keys and values with a KV cache (the search itself is :mod:`deepatlas.models.decoding`,
shared with the recurrent encoder-decoders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.attention import KVCache, padding_mask
from ..nn.positional import SinusoidalPositions
from ..nn.transformer import TransformerBlock
from ..registry import register_model
from ..schema import option
from .decoding import Decoding


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = option(37000, "shared source/target vocabulary (from the tokenizer)", low=1)
    max_len: int = option(256, "longest source or target sequence", low=2)
    n_encoder_layers: int = option(6, "encoder layers (N)", low=1)
    n_decoder_layers: int = option(6, "decoder layers (N)", low=1)
    d_model: int = option(512, "model width", low=1)
    n_head: int = option(8, "attention heads (h)", low=1)
    d_ff: int = option(2048, "feed-forward width", low=1)
    dropout: float = option(0.1, "residual, embedding and attention dropout (P_drop)", low=0.0, high=1.0)
    activation: Literal["relu", "gelu"] = option("relu", "feed-forward activation (the paper: ReLU)")
    norm: Literal["post", "pre"] = option("post", "LayerNorm after (the paper) or before each sub-layer")
    tie_embeddings: bool = option(True, "share source, target and output embeddings")
    pad_id: int = option(0, "[PAD] token id (from the tokenizer)", low=0)
    bos_id: int = option(1, "[BOS] token id (from the tokenizer)", low=0)
    eos_id: int = option(2, "[EOS] token id (from the tokenizer)", low=0)
    fused_attention: bool = option(True, "use torch's fused attention kernels")

    def validate(self, path: str) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(f"{path}.n_head: d_model ({self.d_model}) must be divisible by n_head ({self.n_head}).")


class EncoderDecoder(Decoding, nn.Module):
    """``forward(src (B, S), tgt_in (B, T)) -> logits (B, T, vocab)`` with teacher forcing."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.target_embed = self.embed if c.tie_embeddings else nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.positions = SinusoidalPositions(c.max_len, c.d_model)
        self.dropout = nn.Dropout(c.dropout)

        def block(cross: bool) -> TransformerBlock:
            return TransformerBlock(
                c.d_model, c.n_head, c.d_ff, dropout=c.dropout, activation=c.activation, norm_first=c.norm == "pre",
                cross_attention=cross, fused=c.fused_attention,
            )

        self.encoder = nn.ModuleList(block(False) for _ in range(c.n_encoder_layers))
        self.decoder = nn.ModuleList(block(True) for _ in range(c.n_decoder_layers))
        self.encoder_norm = nn.LayerNorm(c.d_model) if c.norm == "pre" else nn.Identity()
        self.decoder_norm = nn.LayerNorm(c.d_model) if c.norm == "pre" else nn.Identity()
        self.output = nn.Linear(c.d_model, c.vocab_size, bias=False)
        for p in self.parameters():
            if p.ndim >= 2:
                nn.init.xavier_uniform_(p)
        for table in {self.embed, self.target_embed}:
            nn.init.normal_(table.weight, 0.0, c.d_model**-0.5)
            with torch.no_grad():
                table.weight[c.pad_id].zero_()
        if c.tie_embeddings:
            self.output.weight = self.embed.weight

    def _embed(self, table: nn.Embedding, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        scaled = table(ids) * math.sqrt(self.config.d_model)
        return self.dropout(scaled + self.positions(ids.shape[1], offset))

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory (B, S, d), attention mask over the source (B, 1, 1, S))."""
        mask = padding_mask(src == self.config.pad_id)
        x = self._embed(self.embed, src)
        for layer in self.encoder:
            x = layer(x, mask=mask)
        return self.encoder_norm(x), mask

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
        cache: KVCache | None = None, memory_cache: KVCache | None = None,
    ) -> torch.Tensor:
        offset = cache.length if cache is not None else 0
        x = self._embed(self.target_embed, tgt_in, offset)
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, causal=True, memory_mask=memory_mask, cache=cache, memory_cache=memory_cache, layer=i)
        return self.output(self.decoder_norm(x))  # (B, T, vocab)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)

    # ----------------------------------------------------------------- decoding (models.decoding)

    def start(self, src: torch.Tensor, beams: int) -> tuple[torch.Tensor, torch.Tensor, KVCache, KVCache]:
        """The encoded source, repeated ``beams`` times, and empty self- and cross-attention caches."""
        memory, mask = self.encode(src)
        return memory.repeat_interleave(beams, 0), mask.repeat_interleave(beams, 0), KVCache(), KVCache()  # (B k, S, d)

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor, KVCache, KVCache]) -> tuple[torch.Tensor, Any]:
        """Logits (N, vocab) of the next token after ``tokens`` (N,); the caches grow by one position."""
        memory, mask, cache, memory_cache = state
        return self.decode(tokens[:, None], memory, mask, cache, memory_cache)[:, -1], state

    def reorder(self, state: tuple[torch.Tensor, torch.Tensor, KVCache, KVCache], index: torch.Tensor) -> Any:
        # the memory and its cross-attention keys are the same for every beam of a source: only
        # the self-attention cache differs between beams
        state[2].reorder(index)
        return state


register_model(
    "transformer-base", EncoderDecoder, TransformerConfig(), family="transformer",
    doc="the base Transformer (Vaswani et al. 2017): 6+6 layers, 512 wide, 8 heads, d_ff 2048",
)
register_model(
    "transformer-big", EncoderDecoder,
    TransformerConfig(d_model=1024, n_head=16, d_ff=4096, dropout=0.3), family="transformer",
    doc="the big Transformer: 6+6 layers, 1024 wide, 16 heads, d_ff 4096",
)
register_model(
    "transformer-small", EncoderDecoder,
    TransformerConfig(vocab_size=70, max_len=64, n_encoder_layers=3, n_decoder_layers=3, d_model=128, n_head=4, d_ff=512),
    family="transformer", doc="a 3+3-layer, 128-wide Transformer for CPU sequence-to-sequence tasks",
)
