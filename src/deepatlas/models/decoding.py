"""Greedy decoding and beam search over any decoder that steps with a state.

A decoder offers three methods (:class:`StepDecoder`): ``start(src, beams)`` encodes the
source once and returns the decoding state of ``B * beams`` rows (each source repeated
``beams`` times, row-major); ``step(tokens (N,), state) -> (logits (N, vocab), state)``
reads one token per row; ``reorder(state, index (N,))`` keeps the rows ``index`` (the
surviving beams). The Transformer's state is its key/value caches, a recurrent decoder's
its hidden state (and, with attention, the previous attentional vector).

Beam search keeps the ``beam_size`` best partial hypotheses by total log-probability; a
finished hypothesis (one that emitted [EOS]) is extended by [PAD] at no cost, and the best
finished one is chosen under the GNMT length penalty (Wu et al. 2016):
score(Y) = log P(Y | X) / lp(Y),  lp(Y) = ((5 + |Y|) / 6)^alpha, |Y| counting [EOS].
Beam size 1 is greedy decoding.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class StepDecoder(Protocol):
    """What :func:`beam_search` needs of an encoder-decoder."""

    def start(self, src: torch.Tensor, beams: int) -> Any: ...

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...

    def reorder(self, state: Any, index: torch.Tensor) -> Any: ...


def beam_search(
    decoder: StepDecoder, src: torch.Tensor, max_len: int, beam_size: int, length_penalty: float, *,
    vocab_size: int, bos_id: int, eos_id: int, pad_id: int,
) -> torch.Tensor:
    """Best hypothesis per source (B, <= max_len), without [BOS], [PAD] after [EOS]."""
    b, k, device = src.shape[0], beam_size, src.device
    state = decoder.start(src, k)
    tokens = torch.full((b * k, 1), bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(b, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep one
    finished = torch.zeros(b * k, dtype=torch.bool, device=device)
    lengths = torch.zeros(b * k, device=device)
    for _ in range(max_len):
        logits, state = decoder.step(tokens[:, -1], state)
        logp = logits.float().log_softmax(-1)
        # a finished hypothesis can only be extended by [PAD] at no cost
        logp[finished] = float("-inf")
        logp[finished, pad_id] = 0.0
        total = (scores.view(-1, 1) + logp).view(b, k * vocab_size)
        scores, flat = total.topk(k, dim=-1)  # (B, k)
        origin = (flat // vocab_size + torch.arange(b, device=device)[:, None] * k).view(-1)
        nxt = (flat % vocab_size).view(-1)
        state = decoder.reorder(state, origin)
        tokens = torch.cat([tokens[origin], nxt[:, None]], dim=1)
        finished, lengths = finished[origin], lengths[origin]
        lengths = lengths + (~finished).float()
        finished = finished | (nxt == eos_id)
        if bool(finished.all()):
            break
    penalty = ((5.0 + lengths) / 6.0) ** length_penalty
    best = (scores.view(-1) / penalty).view(b, k).argmax(dim=-1)
    chosen = tokens.view(b, k, -1)[torch.arange(b, device=device), best, 1:]
    return pad_after_eos(chosen, eos_id, pad_id)


class Decoding:
    """``greedy`` and ``beam_search`` for an encoder-decoder that is a :class:`StepDecoder` and whose ``config``
    has ``vocab_size``, ``bos_id``, ``eos_id`` and ``pad_id``."""

    config: Any

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """(B, <= max_len) output tokens (without [BOS]), padded after [EOS]."""
        return self.beam_search(src, max_len, beam_size=1)

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, max_len: int, beam_size: int = 4, length_penalty: float = 0.6) -> torch.Tensor:
        """Best hypothesis per source under the GNMT length penalty; (B, <= max_len), [PAD] after [EOS]."""
        c = self.config
        return beam_search(
            self, src, max_len, beam_size, length_penalty, vocab_size=c.vocab_size, bos_id=c.bos_id, eos_id=c.eos_id,  # type: ignore[arg-type]
            pad_id=c.pad_id,
        )


def pad_after_eos(tokens: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """Replace every token after a row's first [EOS] by [PAD]."""
    return tokens.masked_fill(after_eos(tokens, eos_id), pad_id)


def after_eos(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """True at the positions after each row's first [EOS] (the [EOS] itself is False)."""
    is_eos = (tokens == eos_id).long()
    return is_eos.cumsum(dim=1) - is_eos > 0
