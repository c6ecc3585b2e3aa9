"""Recurrent encoder-decoders with attention (Bahdanau; Luong): masks, cached decoding, beam search,
the papers' equations written out by hand over torch.nn.GRU/LSTM in float64, and a tiny reversal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepatlas.models.rnn_seq2seq import Bahdanau, Luong
from deepatlas.registry import create_model

PAD, BOS, EOS, V = 0, 1, 2, 20
VARIANTS = [
    ("bahdanau-small", {}),
    ("bahdanau-small", {"cell": "lstm", "deep_output": "tanh"}),
    ("luong-small", {"score": "dot"}),
    ("luong-small", {"score": "general"}),
    ("luong-small", {"score": "concat"}),
    ("luong-small", {"score": "general", "input_feeding": False}),
    ("luong-small", {"score": "dot", "cell": "gru", "layers": 1}),
]
IDS = [f"{name}-{'-'.join(map(str, kw.values())) or 'default'}" for name, kw in VARIANTS]


def tiny(name: str, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    size = {"embedding": 8, "hidden": 12}
    if name.startswith("bahdanau"):
        size.update(attention_size=10, output_size=6, init="torch")  # the paper's tiny init gives near-uniform outputs
    else:
        size.update(layers=2, dropout=0.0, init_range=0.3)
    return create_model(name, **{"vocab_size": V, **size, **kw}).eval()


def sources() -> torch.Tensor:
    torch.manual_seed(1)
    src = torch.randint(3, V, (4, 9))
    src[1, 6:] = PAD
    src[3, 2:] = PAD
    return src


def sequence_logprob(m: torch.nn.Module, src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """log p(out | src) by teacher forcing, up to and including [EOS]."""
    tgt = torch.cat([torch.full((len(out), 1), BOS), out], dim=1)
    logp = m(src, tgt[:, :-1]).log_softmax(-1).gather(-1, tgt[:, 1:, None]).squeeze(-1)
    return (logp * (tgt[:, 1:] != PAD)).sum(1)


@pytest.mark.parametrize(("name", "kw"), VARIANTS, ids=IDS)
def test_shapes_and_attention_is_a_distribution_over_real_source_tokens(name: str, kw: dict) -> None:
    m, src = tiny(name, **kw), sources()
    tgt_in = torch.randint(3, V, (4, 7))
    logits, weights = m.teacher_forced(src, tgt_in)
    assert logits.shape == (4, 7, V) and weights.shape == (4, 7, 9)
    assert torch.equal(m(src, tgt_in), logits)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 7), atol=1e-6)
    assert torch.all(weights.masked_select((src == PAD)[:, None, :].expand_as(weights)) == 0.0)  # exactly zero
    tokens, decoded = m.attention(src, 11)
    assert tokens.shape == (4, decoded.shape[1]) and decoded.shape[2] == 9
    emitted = ((tokens == EOS).long().cumsum(1) - (tokens == EOS).long()) == 0  # up to and including [EOS]
    assert torch.allclose(decoded.sum(-1), emitted.double().to(decoded.dtype), atol=1e-6)
    assert torch.all(decoded[..., 6:][1] == 0.0) and torch.all(decoded[..., 2:][3] == 0.0)


@pytest.mark.parametrize(("name", "kw"), VARIANTS, ids=IDS)
def test_padded_source_tokens_change_nothing(name: str, kw: dict) -> None:
    m, src = tiny(name, **kw), sources()
    tgt_in = torch.randint(3, V, (4, 7))
    noisy = src.clone()
    noisy[1, 6:] = 5  # the tokens behind the padding (the mask comes from [PAD]: make them [PAD] again below)
    noisy = noisy.masked_fill(src == PAD, PAD)
    assert torch.equal(m(noisy, tgt_in), m(src, tgt_in))
    # a longer padded batch: more [PAD] columns at the end change neither logits nor decoding
    wider = F.pad(src, (0, 5), value=PAD)
    assert torch.allclose(m(wider, tgt_in), m(src, tgt_in), atol=1e-6)
    assert torch.equal(m.beam_search(wider, 10, 3), m.beam_search(src, 10, 3))


@pytest.mark.parametrize(("name", "kw"), VARIANTS, ids=IDS)
def test_cached_decoding_equals_teacher_forcing_on_the_decoded_prefix(name: str, kw: dict) -> None:
    m, src = tiny(name, **kw), sources()
    state = m.start(src, 1)
    tokens = torch.full((4,), BOS)
    stepped, chosen = [], []
    for _ in range(10):
        logits, state = m.step(tokens, state)
        stepped.append(logits)
        tokens = logits.argmax(-1)
        chosen.append(tokens)
    out = torch.stack(chosen, 1)
    tgt_in = torch.cat([torch.full((4, 1), BOS), out[:, :-1]], dim=1)
    assert torch.allclose(torch.stack(stepped, 1), m(src, tgt_in), atol=1e-5)
    greedy = m.greedy(src, 10)
    after = (out == EOS).long().cumsum(1) - (out == EOS).long() > 0
    assert torch.equal(greedy, out.masked_fill(after, PAD)[:, : greedy.shape[1]])


@pytest.mark.parametrize(("name", "kw"), VARIANTS, ids=IDS)
def test_beam_search_is_at_least_as_likely_as_greedy_and_beam_one_is_greedy(name: str, kw: dict) -> None:
    m, src = tiny(name, **kw), sources()
    greedy = m.greedy(src, 10)
    assert torch.equal(m.beam_search(src, 10, beam_size=1), greedy)
    beam = m.beam_search(src, 10, beam_size=5, length_penalty=0.0)
    assert torch.all(sequence_logprob(m, src, beam) >= sequence_logprob(m, src, greedy) - 1e-5)
    assert torch.all(beam[:, 1:][beam[:, :-1] == EOS] == PAD)  # [PAD] after [EOS]


# --------------------------------------------------------------------------- the papers' equations by hand


def _copy_rnn(ours: torch.nn.Module, theirs: torch.nn.RNNBase) -> torch.nn.RNNBase:
    theirs.load_state_dict({k: v for k, v in ours.state_dict().items()})  # same parameter names and layout
    return theirs.double()


def test_bahdanau_equals_the_paper_written_out_in_float64() -> None:
    m = tiny("bahdanau-small", init="paper").double()
    with torch.no_grad():  # the paper's init makes attention near-uniform: spread the weights to test something
        for p in m.parameters():
            p.normal_(0.0, 0.5)
    src, tgt_in = sources()[:2], torch.tensor([[BOS, 5, 7], [BOS, 4, 4]])
    logits, weights = m.teacher_forced(src, tgt_in)
    n = m.config.hidden
    encoder = _copy_rnn(m.encoder, torch.nn.GRU(8, n, batch_first=True, bidirectional=True))
    cell = torch.nn.GRUCell(8 + 2 * n, n).double()
    cell.load_state_dict(m.cell.state_dict())
    W_a, U_a, v_a = m.query.weight, m.key.weight, m.score.weight[0]
    for b in range(2):
        length = int((src[b] != PAD).sum())
        h, _ = encoder(m.source_embed(src[b : b + 1, :length]))  # (1, S, 2n), this source alone
        h = h[0]
        s = torch.tanh(m.init_state(h[0, n:]))  # s_0 = tanh(W_s h_1 backward)
        for i in range(3):
            e = torch.stack([v_a @ torch.tanh(W_a @ s + U_a @ h[j]) for j in range(length)])
            a = e.exp() / e.exp().sum()
            c = sum(a[j] * h[j] for j in range(length))
            y = m.target_embed(tgt_in[b, i])
            s = cell(torch.cat([y, c])[None], s[None])[0]
            t_tilde = m.deep.weight @ torch.cat([s, y, c]) + m.deep.bias
            t = torch.stack([torch.maximum(t_tilde[2 * k], t_tilde[2 * k + 1]) for k in range(len(t_tilde) // 2)])
            torch.testing.assert_close(weights[b, i, :length], a)
            torch.testing.assert_close(logits[b, i], m.output.weight @ t + m.output.bias)
        assert torch.all(weights[b, :, length:] == 0)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
@pytest.mark.parametrize("feeding", [True, False])
def test_luong_equals_the_paper_written_out_in_float64(score: str, feeding: bool) -> None:
    m = tiny("luong-small", score=score, input_feeding=feeding).double()
    src, tgt_in = sources()[:2], torch.tensor([[BOS, 5, 7, 3], [BOS, 4, 4, 9]])
    logits, weights = m.teacher_forced(src, tgt_in)
    H = m.config.hidden
    encoder = _copy_rnn(m.encoder, torch.nn.LSTM(8, H, 2, batch_first=True))
    decoder = _copy_rnn(m.decoder, torch.nn.LSTM(8 + (H if feeding else 0), H, 2, batch_first=True))

    def score_of(h_t: torch.Tensor, hbar: torch.Tensor) -> torch.Tensor:
        if score == "dot":
            return h_t @ hbar
        if score == "general":
            return h_t @ (m.align.weight @ hbar)
        return m.score_vector.weight[0] @ torch.tanh(m.align.weight @ torch.cat([h_t, hbar]))

    for b in range(2):
        length = int((src[b] != PAD).sum())
        hbar, state = encoder(m.source_embed(src[b : b + 1, :length]))  # the decoder starts from the encoder's last states
        hbar = hbar[0]
        h_tilde = torch.zeros(H, dtype=torch.float64)
        for t in range(4):
            x = m.target_embed(tgt_in[b, t])
            x = torch.cat([x, h_tilde]) if feeding else x
            out, state = decoder(x[None, None], state)
            h_t = out[0, 0]
            e = torch.stack([score_of(h_t, hbar[s]) for s in range(length)])
            a = e.exp() / e.exp().sum()
            c = sum(a[s] * hbar[s] for s in range(length))
            h_tilde = torch.tanh(m.combine.weight @ torch.cat([c, h_t]))  # eq. 5
            torch.testing.assert_close(weights[b, t, :length], a)
            torch.testing.assert_close(logits[b, t], m.output.weight @ h_tilde + m.output.bias)  # eq. 6


def test_bahdanau_paper_initialisation() -> None:
    m = create_model("bahdanau-small", vocab_size=V, hidden=32, attention_size=16, output_size=8)
    n = 32
    for w in (m.cell.weight_hh, m.encoder.weight_hh_l0, m.encoder.weight_hh_l0_reverse):
        for block in w.split(n):
            torch.testing.assert_close(block @ block.T, torch.eye(n), atol=1e-5, rtol=0)
    assert torch.all(m.score.weight == 0) and torch.all(m.cell.bias_ih == 0) and torch.all(m.output.bias == 0)
    assert 0.0005 < float(m.key.weight.detach().std()) < 0.0015 and 0.005 < float(m.deep.weight.detach().std()) < 0.015


def test_presets_are_the_papers_and_transformer_small_sized() -> None:
    assert isinstance(create_model("bahdanau-small"), Bahdanau) and isinstance(create_model("luong-small"), Luong)
    from deepatlas.models import count_parameters
    from deepatlas.registry import MODELS

    def params(name: str) -> int:
        with torch.device("meta"):
            return count_parameters(MODELS.get(name).factory(MODELS.get(name).config))

    small = params("transformer-small")
    assert 0.9 * small < params("bahdanau-small") < 1.1 * small and 0.9 * small < params("luong-small") < 1.1 * small
    c = MODELS.get("bahdanau-rnnsearch").config
    assert (c.embedding, c.hidden, c.attention_size, c.output_size, c.vocab_size) == (620, 1000, 1000, 500, 30000)
    c = MODELS.get("luong-global").config
    assert (c.layers, c.hidden, c.embedding, c.dropout, c.input_feeding) == (4, 1000, 1000, 0.2, True)


# --------------------------------------------------------------------------- it learns


@pytest.mark.parametrize("name", ["bahdanau-small", "luong-small"])
def test_learns_to_reverse_short_strings(name: str) -> None:
    """Strings of 3-6 tokens from 6 letters: 300 Adam steps (about 2 s on one thread) take the loss
    below 5% of its start and held-out exact match to >= 0.95."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: a second thread only adds overhead
    torch.manual_seed(0)
    size = {"embedding": 16, "hidden": 32}
    size.update({"attention_size": 32, "output_size": 16} if name.startswith("bahdanau") else {"layers": 1, "dropout": 0.0})
    m = create_model(name, vocab_size=9, **size)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.randint(3, 7, (n,))
        src = torch.randint(3, 9, (n, 6)).masked_fill(torch.arange(6) >= lengths[:, None], PAD)
        tgt = torch.full((n, 8), PAD)
        for i, k in enumerate(lengths.tolist()):
            tgt[i, : k + 2] = torch.tensor([BOS, *src[i, :k].flip(0).tolist(), EOS])
        return src, tgt

    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    losses = []
    try:
        for _ in range(300):
            src, tgt = batch(32)
            loss = F.cross_entropy(m(src, tgt[:, :-1]).flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(threads)
    m.eval()
    src, tgt = batch(200)
    out = m.greedy(src, 8)
    reference = tgt[:, 1:].masked_fill(tgt[:, 1:] == EOS, PAD)
    decoded = F.pad(out.masked_fill(out == EOS, PAD), (0, 7 - out.shape[1]), value=PAD)
    exact = float((decoded == reference).all(1).float().mean())
    assert sum(losses[-20:]) / 20 < 0.05 * sum(losses[:20]) / 20
    assert exact >= 0.95, exact
