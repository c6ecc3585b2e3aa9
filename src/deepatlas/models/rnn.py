"""Character-level recurrent language models (Elman 1990; Hochreiter & Schmidhuber 1997; Cho et al. 2014).

Embedding -> a stack of RNN/LSTM/GRU layers -> dropout -> a linear layer onto the
vocabulary (Karpathy's char-rnn, 2015; Graves 2013, "Generating sequences with recurrent
neural networks"): h_t = cell(e(x_t), h_{t-1}), p(x_{t+1} | x_<=t) = softmax(W h_t + b).
Trained by the ``causal-lm`` task like GPT: ``forward(idx (B, T)) -> logits (B, T, vocab)``,
each window starting from a zero state; with ``task.carry_state`` (truncated BPTT over
``data.sampling: stream``) the task calls ``step(idx, state)`` instead and starts each batch
from the previous batch's final state, detached.

Generation carries the recurrent state: each new token costs one step, and the whole
history conditions the next token (there is no context window to slide). It gives
exactly the tokens that re-reading the whole history each step gives (tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..nn.recurrent import Recurrent
from ..registry import register_model
from ..schema import option
from .gpt import sample_next


@dataclass(frozen=True)
class CharRNNConfig:
    vocab_size: int = option(65, "vocabulary size (from the tokenizer)", low=1)
    block_size: int = option(256, "longest training window in tokens (the recurrence itself has no context limit)", low=1)
    mode: Literal["rnn", "lstm", "gru"] = option("lstm", "recurrent cell: Elman (tanh), LSTM or GRU")
    n_embd: int = option(220, "token embedding width", low=1)
    hidden: int = option(220, "hidden state width of each layer", low=1)
    n_layer: int = option(2, "recurrent layers", low=1)
    dropout: float = option(0.0, "dropout on embeddings, between layers and before the output layer", low=0.0, high=1.0)
    impl: Literal["explicit", "fused"] = option("fused", "torch's fused kernels (cuDNN on GPU) or the explicit step-by-step equations")


class CharRNN(nn.Module):
    """Recurrent language model: ``forward(idx (B, T), state=None) -> logits (B, T, vocab)``."""

    def __init__(self, config: CharRNNConfig) -> None:
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = Recurrent(c.mode, c.n_embd, c.hidden, c.n_layer, batch_first=True, dropout=c.dropout, impl=c.impl)
        self.lm_head = nn.Linear(c.hidden, c.vocab_size)

    def step(self, idx: torch.Tensor, state: object = None) -> tuple[torch.Tensor, object]:
        """Logits (B, T, vocab) after ``idx`` (B, T) from ``state`` (None: zeros), and the state after it."""
        out, state = self.rnn(self.drop(self.wte(idx)), state)
        return self.lm_head(self.drop(out)), state

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.step(idx)[0]

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield (B,) new tokens one at a time after the prompt ``idx`` (B, T), as GPT.generate.

        ``use_cache``: carry the recurrent state (one step per token); false re-reads the
        whole history every step (the reference the carried state must equal).
        """
        state, context, pending = None, idx, idx
        for _ in range(max_new_tokens):
            if use_cache:
                logits, state = self.step(pending, state)
            else:
                logits = self(context)
            nxt = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
            yield nxt
            context = torch.cat([context, nxt[:, None]], dim=1)
            pending = nxt[:, None]


# --------------------------------------------------------------------------- presets
# Widths chosen so that each has about the parameters of gpt-tiny (0.80 M), the model of
# recipes/gpt-shakespeare-char.yaml, for a like-for-like comparison on Tiny Shakespeare.

register_model(
    "lstm-char", CharRNN, CharRNNConfig(mode="lstm", n_embd=220, hidden=220, n_layer=2), family="rnn",
    doc="character LSTM: 2 layers x 220 (0.81 M parameters, about gpt-tiny's)",
)
register_model(
    "gru-char", CharRNN, CharRNNConfig(mode="gru", n_embd=256, hidden=256, n_layer=2), family="rnn",
    doc="character GRU: 2 layers x 256 (0.82 M parameters, about gpt-tiny's)",
)
register_model(
    "rnn-char", CharRNN, CharRNNConfig(mode="rnn", n_embd=432, hidden=432, n_layer=2), family="rnn",
    doc="character Elman RNN (tanh): 2 layers x 432 (0.80 M parameters, about gpt-tiny's)",
)
