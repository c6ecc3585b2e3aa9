"""The encoder-decoder Transformer: causality, cached greedy decoding, beam search."""

from __future__ import annotations

import torch

from deepatlas.registry import create_model

PAD, BOS, EOS = 0, 1, 2


def model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(
        "transformer-small", **{"vocab_size": 20, "n_encoder_layers": 2, "n_decoder_layers": 2, "d_model": 32, **kw}
    ).eval()


def sources() -> torch.Tensor:
    src = torch.randint(3, 20, (4, 9))
    src[1, 6:] = PAD
    return src


def sequence_logprob(m: torch.nn.Module, src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """log p(out | src) by teacher forcing, up to and including [EOS]."""
    tgt = torch.cat([torch.full((len(out), 1), BOS), out], dim=1)
    logp = m(src, tgt[:, :-1]).log_softmax(-1).gather(-1, tgt[:, 1:, None]).squeeze(-1)
    return (logp * (tgt[:, 1:] != PAD)).sum(1)


def test_decoder_is_causal_and_ignores_source_padding() -> None:
    m = model()
    src, tgt = sources(), torch.randint(3, 20, (4, 7))
    base = m(src, tgt)
    changed = tgt.clone()
    changed[:, 5:] = 3
    assert torch.allclose(m(src, changed)[:, :5], base[:, :5], atol=1e-5)
    noisy = src.clone()
    noisy[1, 6:] = PAD  # already padding: the encoder must not see it
    assert torch.allclose(m(noisy, tgt), base, atol=1e-6)


def test_cached_greedy_equals_recomputed_greedy() -> None:
    m = model()
    src = sources()
    cached = m.greedy(src, 12)
    tokens = torch.full((4, 1), BOS)
    for _ in range(12):
        nxt = m(src, tokens)[:, -1].argmax(-1)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
    reference = tokens[:, 1:]
    after_eos = (reference == EOS).long().cumsum(1) - (reference == EOS).long() > 0
    assert torch.equal(cached, reference.masked_fill(after_eos, PAD)[:, : cached.shape[1]])


def test_beam_search_finds_at_least_as_likely_outputs_as_greedy() -> None:
    m = model()
    src = sources()
    greedy = m.greedy(src, 10)
    beam = m.beam_search(src, 10, beam_size=4, length_penalty=0.0)
    assert torch.all(sequence_logprob(m, src, beam) >= sequence_logprob(m, src, greedy) - 1e-4)
    assert torch.equal(m.beam_search(src, 10, beam_size=1), greedy)
