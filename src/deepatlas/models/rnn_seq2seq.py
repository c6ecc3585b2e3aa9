"""Recurrent encoder-decoders with attention (Bahdanau, Cho & Bengio 2015; Luong, Pham & Manning 2015).

**Bahdanau et al. 2015**, "Neural Machine Translation by Jointly Learning to Align and
Translate" (RNNsearch). A bidirectional GRU reads the embedded source; the annotation of
source word j is h_j = [h_j forward; h_j backward] (Section 3.2). The decoder state starts at
s_0 = tanh(W_s h_1 backward) (Appendix A.2.2). At output step i:

- e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)   (alignment model, eq. 6 and Appendix A.1.2;
  U_a h_j does not depend on i and is computed once per source);
- a_ij = exp(e_ij) / sum_k exp(e_ik) over the real source words ([PAD] gets exactly 0);
- c_i = sum_j a_ij h_j   (eq. 5);
- s_i = GRU([E y_{i-1}; c_i], s_{i-1})   (eq. 4: the previous word and the context enter the gates);
- t~_i = U_o s_i + V_o E y_{i-1} + C_o c_i (2l units), t_i = max(t~_{i,2j-1}, t~_{i,2j}) (maxout,
  l units), p(y_i | ...) = softmax(W_o t_i)   (the deep output of Appendix A.2.2; the appendix
  writes s_{i-1} in t~_i, eq. 4 of the main text g(y_{i-1}, s_i, c_i): we follow eq. 4).
  ``deep_output="tanh"`` replaces the maxout by t_i = tanh(t~_i) with l units.

RNNsearch-50 (Section 4.2): embeddings m = 620, hidden n = 1000, alignment n' = 1000, maxout
l = 500, 30,000-word vocabularies. Initialisation as Appendix B.1: recurrent matrices random
orthogonal, W_a and U_a N(0, 0.001^2), v_a and biases 0, everything else N(0, 0.01^2).
``cell="lstm"`` uses an LSTM instead of the GRU (initial memory cell c_0 = 0).

**Luong et al. 2015**, "Effective Approaches to Attention-based Neural Machine Translation",
global attention. Stacked LSTMs encode the source (h-bar_s, top layer) and decode; the decoder
starts from the encoder's final states. At target step t, with h_t the decoder's top state:

- score(h_t, h-bar_s) = h_t^T h-bar_s (dot) | h_t^T W_a h-bar_s (general) |
  v_a^T tanh(W_a [h_t; h-bar_s]) (concat)   (eq. 8);
- a_t(s) = softmax over the real source positions of the scores (eq. 7); c_t = sum_s a_t(s) h-bar_s;
- h~_t = tanh(W_c [c_t; h_t])   (eq. 5), p(y_t | y_<t, x) = softmax(W_s h~_t)   (eq. 6);
- input feeding (Section 3.3, on by default): the next decoder input is [E y_t; h~_t] (h~_0 = 0).

The paper's setting (Section 4.1): 4 layers of 1000 LSTM cells, 1000-dimensional embeddings,
50,000-word vocabularies, parameters U(-0.1, 0.1), dropout 0.2. Not here: local attention
(local-m, local-p) and the location-based score, and reversing the source.

Both take teacher-forced batches as the Transformer does (``forward(src, tgt_in) -> logits``),
decode greedily or with beam search through :mod:`deepatlas.models.decoding` (the recurrent
state is the decoding state, reordered with the beams), and return their attention weights
(``attention(src, max_len)``). Source and target share one vocabulary (one tokenizer) but
have their own embedding tables, as the papers' separate vocabularies do. Padding sits at the
end of each source row; an all-[PAD] row attends to its first position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.recurrent import GRUCell, LSTMCell, Recurrent
from ..registry import register_model
from ..schema import option
from .decoding import Decoding, after_eos


class Memory(NamedTuple):
    """The encoded source, fixed while decoding."""

    annotations: torch.Tensor  # (N, S, D): h_j (Bahdanau), h-bar_s (Luong)
    keys: torch.Tensor | None  # (N, S, A): the source half of the score, computed once (None: dot)
    valid: torch.Tensor  # (N, S): True at real source tokens

    def repeat(self, k: int) -> Memory:
        return Memory(*(None if t is None else t.repeat_interleave(k, 0) for t in self))


class DecoderState(NamedTuple):
    """What decoding carries from one target step to the next."""

    memory: Memory
    hidden: tuple[torch.Tensor, ...]  # (h,) or (h, c); Bahdanau (N, n) each, Luong (layers, N, H)
    feed: torch.Tensor | None  # Luong's input feeding: h~_{t-1} (N, H); None without it


def attention_weights(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax of scores (N, T, S) over the valid source positions (N, S); exactly 0 elsewhere."""
    return scores.masked_fill(~valid[:, None, :], float("-inf")).softmax(dim=-1)


def _source(src: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(valid (B, S), lengths (B,)) of end-padded sources; an empty row keeps its first position."""
    valid = src != pad_id
    valid[:, 0] = True
    # the meta device (shape checks) has no data to count lengths on
    return valid, (valid.sum(1) if src.device.type != "meta" else None)


class AttentionSeq2Seq(Decoding, nn.Module):
    """What the two families share: teacher forcing, decoding, attention weights.

    A subclass defines ``encode(src) -> (Memory, initial hidden state)``, ``decode(tgt_in (N, T),
    state) -> (logits (N, T, vocab), weights (N, T, S), state)`` and ``state_batch_dim`` (the
    batch dimension of its hidden state tensors).
    """

    config: Any
    state_batch_dim = 0
    returns_attention = True  # ``attention(src, max_len)``: what the seq2seq task draws

    def encode(self, src: torch.Tensor) -> tuple[Memory, tuple[torch.Tensor, ...]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:  # pragma: no cover
        raise NotImplementedError

    def initial_feed(self, hidden: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        return None

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt_in, self.start(src, 1))[0]

    def teacher_forced(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, vocab) and attention weights (B, T, S) given the target shifted right."""
        logits, weights, _ = self.decode(tgt_in, self.start(src, 1))
        return logits, weights

    # ----------------------------------------------------------------- decoding (models.decoding)

    def start(self, src: torch.Tensor, beams: int) -> DecoderState:
        memory, hidden = self.encode(src)
        if beams > 1:
            memory = memory.repeat(beams)
            hidden = tuple(h.repeat_interleave(beams, self.state_batch_dim) for h in hidden)
        return DecoderState(memory, hidden, self.initial_feed(hidden))

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        logits, _, state = self.decode(tokens[:, None], state)
        return logits[:, -1], state

    def reorder(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        # the memory is the same for every beam of a source: only the recurrent state moves
        hidden = tuple(h.index_select(self.state_batch_dim, index) for h in state.hidden)
        feed = None if state.feed is None else state.feed.index_select(0, index)
        return state._replace(hidden=hidden, feed=feed)


    @torch.no_grad()
    def attention(self, src: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy output tokens (B, L) and the attention weights (B, L, S) that produced them.

        Row t of the weights is where the decoder looked when it emitted token t; rows after
        the first [EOS] are zeros.
        """
        tokens = self.greedy(src, max_len)
        tgt_in = torch.cat([torch.full_like(tokens[:, :1], self.config.bos_id), tokens[:, :-1]], dim=1)
        _, weights = self.teacher_forced(src, tgt_in)
        return tokens, weights.masked_fill(after_eos(tokens, self.config.eos_id)[..., None], 0.0)


# --------------------------------------------------------------------------- Bahdanau et al. 2015


@dataclass(frozen=True)
class BahdanauConfig:
    vocab_size: int = option(30000, "shared source/target vocabulary (from the tokenizer; the paper: 30,000 each)", low=1)
    cell: Literal["gru", "lstm"] = option("gru", "recurrent unit of encoder and decoder (the paper: gated, GRU)")
    embedding: int = option(620, "word embedding width m", low=1)
    hidden: int = option(1000, "hidden units n of each encoder direction and of the decoder", low=1)
    attention_size: int = option(1000, "hidden units n' of the alignment model", low=1)
    output_size: int = option(500, "units l of the deep output layer (maxout: 2l pieces pooled in pairs)", low=1)
    deep_output: Literal["maxout", "tanh"] = option("maxout", "deep output nonlinearity: the paper's maxout, or tanh")
    dropout: float = option(0.0, "dropout on embeddings and before the output layer (not in the paper)", low=0.0, high=1.0)
    init: Literal["paper", "torch"] = option("paper", "initialisation: Appendix B.1 (orthogonal recurrences, small Gaussians) or torch's defaults")
    impl: Literal["explicit", "fused"] = option("fused", "encoder: torch's fused kernels or the explicit step-by-step equations")
    pad_id: int = option(0, "[PAD] token id (from the tokenizer)", low=0)
    bos_id: int = option(1, "[BOS] token id (from the tokenizer)", low=0)
    eos_id: int = option(2, "[EOS] token id (from the tokenizer)", low=0)


class Bahdanau(AttentionSeq2Seq):
    """RNNsearch: ``forward(src (B, S), tgt_in (B, T)) -> logits (B, T, vocab)``."""

    def __init__(self, config: BahdanauConfig) -> None:
        super().__init__()
        self.config = c = config
        n = c.hidden
        self.source_embed = nn.Embedding(c.vocab_size, c.embedding, padding_idx=c.pad_id)
        self.target_embed = nn.Embedding(c.vocab_size, c.embedding, padding_idx=c.pad_id)
        self.encoder = Recurrent(c.cell, c.embedding, n, 1, batch_first=True, bidirectional=True, impl=c.impl)
        self.init_state = nn.Linear(n, n)  # W_s: s_0 = tanh(W_s h_1 backward)
        self.query = nn.Linear(n, c.attention_size, bias=False)  # W_a
        self.key = nn.Linear(2 * n, c.attention_size, bias=False)  # U_a
        self.score = nn.Linear(c.attention_size, 1, bias=False)  # v_a
        self.cell = (GRUCell if c.cell == "gru" else LSTMCell)(c.embedding + 2 * n, n)
        pieces = 2 * c.output_size if c.deep_output == "maxout" else c.output_size
        self.deep = nn.Linear(n + c.embedding + 2 * n, pieces)  # [U_o V_o C_o] on [s_i; E y_{i-1}; c_i]
        self.output = nn.Linear(c.output_size, c.vocab_size)  # W_o
        self.drop = nn.Dropout(c.dropout)
        if c.init == "paper":
            self._paper_init()
        for table in (self.source_embed, self.target_embed):
            with torch.no_grad():
                table.weight[c.pad_id].zero_()

    def _paper_init(self) -> None:
        """Appendix B.1: orthogonal recurrent matrices (each gate's block), N(0, 0.001^2) for W_a and
        U_a, zeros for v_a and the biases, N(0, 0.01^2) for everything else."""
        recurrent = {self.cell.weight_hh, *(p for name, p in self.encoder.named_parameters() if name.startswith("weight_hh"))}
        for name, p in self.named_parameters():
            if p in recurrent:
                for block in p.data.split(self.config.hidden, dim=0):
                    nn.init.orthogonal_(block)
            elif p is self.query.weight or p is self.key.weight:
                nn.init.normal_(p, 0.0, 0.001)
            elif p is self.score.weight or name.split(".")[-1].startswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, 0.01)

    def encode(self, src: torch.Tensor) -> tuple[Memory, tuple[torch.Tensor, ...]]:
        valid, lengths = _source(src, self.config.pad_id)
        h, _ = self.encoder(self.drop(self.source_embed(src)), lengths=lengths)  # (B, S, 2n): [forward; backward]
        s0 = torch.tanh(self.init_state(h[:, 0, self.config.hidden:]))  # the backward state at the first word
        hidden = (s0,) if self.config.cell == "gru" else (s0, torch.zeros_like(s0))
        return Memory(h, self.key(h), valid), hidden

    def attend(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Context c_i (N, 2n) and weights a_i (N, S) for the previous decoder state s_{i-1} (N, n)."""
        assert memory.keys is not None
        e = self.score(torch.tanh(self.query(query)[:, None, :] + memory.keys)).squeeze(-1)  # (N, S), eq. 6
        a = attention_weights(e[:, None, :], memory.valid)  # (N, 1, S)
        return torch.bmm(a, memory.annotations).squeeze(1), a.squeeze(1)  # eq. 5

    def decode(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        emb = self.drop(self.target_embed(tgt_in))  # (N, T, m): E y_{i-1}
        s = state.hidden
        states, contexts, weights = [], [], []
        for i in range(tgt_in.shape[1]):
            context, a = self.attend(s[0], state.memory)
            s = self.cell(torch.cat([emb[:, i], context], dim=-1), s)
            states.append(s[0])
            contexts.append(context)
            weights.append(a)
        t = self.deep(torch.cat([torch.stack(states, 1), emb, torch.stack(contexts, 1)], dim=-1))  # (N, T, pieces)
        t = t.unflatten(-1, (self.config.output_size, 2)).amax(-1) if self.config.deep_output == "maxout" else torch.tanh(t)
        return self.output(self.drop(t)), torch.stack(weights, 1), state._replace(hidden=s)


# --------------------------------------------------------------------------- Luong et al. 2015


@dataclass(frozen=True)
class LuongConfig:
    vocab_size: int = option(50000, "shared source/target vocabulary (from the tokenizer; the paper: 50,000 each)", low=1)
    cell: Literal["lstm", "gru"] = option("lstm", "recurrent unit of encoder and decoder (the paper: LSTM)")
    embedding: int = option(1000, "word embedding width", low=1)
    hidden: int = option(1000, "cells per layer H (encoder and decoder)", low=1)
    layers: int = option(4, "stacked layers of encoder and decoder", low=1)
    score: Literal["dot", "general", "concat"] = option("general", "alignment score (eq. 8): dot, general (W_a) or concat (v_a, W_a)")
    input_feeding: bool = option(True, "feed h~_{t-1} to the next decoder input (Section 3.3)")
    dropout: float = option(0.2, "dropout on embeddings, between layers and on h~_t before the softmax (the paper: 0.2)", low=0.0, high=1.0)
    init_range: float = option(0.1, "parameters uniform in [-init_range, init_range] (the paper: 0.1; 0: torch's defaults)", low=0.0)
    impl: Literal["explicit", "fused"] = option("fused", "torch's fused kernels or the explicit step-by-step equations")
    pad_id: int = option(0, "[PAD] token id (from the tokenizer)", low=0)
    bos_id: int = option(1, "[BOS] token id (from the tokenizer)", low=0)
    eos_id: int = option(2, "[EOS] token id (from the tokenizer)", low=0)


class Luong(AttentionSeq2Seq):
    """Global attention: ``forward(src (B, S), tgt_in (B, T)) -> logits (B, T, vocab)``."""

    state_batch_dim = 1  # (layers, N, H), as torch.nn.LSTM's h_n

    def __init__(self, config: LuongConfig) -> None:
        super().__init__()
        self.config = c = config
        h = c.hidden
        self.source_embed = nn.Embedding(c.vocab_size, c.embedding, padding_idx=c.pad_id)
        self.target_embed = nn.Embedding(c.vocab_size, c.embedding, padding_idx=c.pad_id)
        self.encoder = Recurrent(c.cell, c.embedding, h, c.layers, batch_first=True, dropout=c.dropout, impl=c.impl)
        feed = h if c.input_feeding else 0
        self.decoder = Recurrent(c.cell, c.embedding + feed, h, c.layers, batch_first=True, dropout=c.dropout, impl=c.impl)
        if c.score == "general":
            self.align = nn.Linear(h, h, bias=False)  # W_a
        elif c.score == "concat":
            self.align = nn.Linear(2 * h, h, bias=False)  # W_a on [h_t; h-bar_s]
            self.score_vector = nn.Linear(h, 1, bias=False)  # v_a
        self.combine = nn.Linear(2 * h, h, bias=False)  # W_c on [c_t; h_t]
        self.output = nn.Linear(h, c.vocab_size)  # W_s
        self.drop = nn.Dropout(c.dropout)
        if c.init_range > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -c.init_range, c.init_range)
        for table in (self.source_embed, self.target_embed):
            with torch.no_grad():
                table.weight[c.pad_id].zero_()

    def _hx(self, hidden: tuple[torch.Tensor, ...]) -> Any:
        return hidden if self.config.cell == "lstm" else hidden[0]

    @staticmethod
    def _tuple(final: Any) -> tuple[torch.Tensor, ...]:
        return tuple(final) if isinstance(final, tuple) else (final,)

    def initial_feed(self, hidden: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        return hidden[0].new_zeros(hidden[0].shape[1:]) if self.config.input_feeding else None  # h~_0 = 0

    def encode(self, src: torch.Tensor) -> tuple[Memory, tuple[torch.Tensor, ...]]:
        valid, lengths = _source(src, self.config.pad_id)
        out, final = self.encoder(self.drop(self.source_embed(src)), lengths=lengths)  # (B, S, H); the states at the last word
        keys = None
        if self.config.score == "general":
            keys = self.align(out)  # W_a h-bar_s
        elif self.config.score == "concat":
            keys = F.linear(out, self.align.weight[:, self.config.hidden:])  # the h-bar_s columns of W_a
        return Memory(out, keys, valid), self._tuple(final)

    def scores(self, h: torch.Tensor, memory: Memory) -> torch.Tensor:
        """score(h_t, h-bar_s) (N, T, S) for top decoder states h (N, T, H), eq. 8."""
        if self.config.score == "concat":
            assert memory.keys is not None
            query = F.linear(h, self.align.weight[:, : self.config.hidden])  # the h_t columns of W_a
            return self.score_vector(torch.tanh(query[:, :, None, :] + memory.keys[:, None, :, :])).squeeze(-1)
        keys = memory.annotations if memory.keys is None else memory.keys
        return torch.bmm(h, keys.transpose(1, 2))

    def attend(self, h: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """h~_t = tanh(W_c [c_t; h_t]) (N, T, H) and the weights a_t (N, T, S)."""
        a = attention_weights(self.scores(h, memory), memory.valid)
        context = torch.bmm(a, memory.annotations)  # c_t
        return torch.tanh(self.combine(torch.cat([context, h], dim=-1))), a

    def decode(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        emb = self.drop(self.target_embed(tgt_in))  # (N, T, E)
        if state.feed is None:  # no input feeding: the decoder runs over all steps at once
            h, final = self.decoder(emb, self._hx(state.hidden))
            attentional, weights = self.attend(h, state.memory)
            hidden, feed = self._tuple(final), None
        else:
            hidden, feed = state.hidden, state.feed
            outs, ws = [], []
            for t in range(tgt_in.shape[1]):
                h, final = self.decoder(torch.cat([emb[:, t : t + 1], feed[:, None]], dim=-1), self._hx(hidden))
                hidden = self._tuple(final)
                out, a = self.attend(h, state.memory)
                feed = out[:, 0]
                outs.append(out)
                ws.append(a)
            attentional, weights = torch.cat(outs, 1), torch.cat(ws, 1)
        return self.output(self.drop(attentional)), weights, state._replace(hidden=hidden, feed=feed)


# --------------------------------------------------------------------------- presets

register_model(
    "bahdanau-rnnsearch", Bahdanau, BahdanauConfig(), family="rnn",
    doc="RNNsearch (Bahdanau et al. 2015): bidirectional GRU encoder, additive attention, maxout deep output; m 620, n 1000, l 500",
)
register_model(
    "bahdanau-small", Bahdanau,
    BahdanauConfig(vocab_size=70, embedding=128, hidden=208, attention_size=208, output_size=192), family="rnn",
    doc="RNNsearch at transformer-small's size (n 208, m 128, l 192: 1.39 M parameters) for CPU sequence-to-sequence tasks",
)
register_model(
    "luong-global", Luong, LuongConfig(), family="rnn",
    doc="global attention (Luong et al. 2015): 4-layer LSTMs of 1000 cells, general score, input feeding",
)
register_model(
    "luong-small", Luong,
    LuongConfig(vocab_size=70, embedding=128, hidden=192, layers=2, dropout=0.1), family="rnn",
    doc="global attention at transformer-small's size (2 layers of 192 LSTM cells, general score, input feeding: 1.38 M parameters)",
)

__all__ = [
    "AttentionSeq2Seq", "Bahdanau", "BahdanauConfig", "DecoderState", "Luong", "LuongConfig", "Memory", "attention_weights",
]
