"""Our recurrent layers against torch.nn.RNN/LSTM/GRU (the oracle), with copied weights.

Outputs, final states and every parameter gradient agree within 1e-5 (float64 would hide
nothing here: the comparisons run in float32 as training does), stacked and bidirectional,
for padded batches with lengths and for PackedSequences.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deepatlas.errors import ConfigError
from deepatlas.nn.recurrent import GRUCell, LSTMCell, Recurrent, RNNCell

TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
TOL = {"atol": 1e-5, "rtol": 1e-5}


def pair(mode: str, impl: str, layers: int, bidirectional: bool, batch_first: bool = True) -> tuple[Recurrent, torch.nn.RNNBase]:
    torch.manual_seed(0)
    oracle = TORCH[mode](5, 7, layers, batch_first=batch_first, bidirectional=bidirectional)
    ours = Recurrent(mode, 5, 7, layers, batch_first=batch_first, bidirectional=bidirectional, impl=impl)
    ours.load_state_dict(oracle.state_dict())  # strict: the same names and shapes
    return ours, oracle


def states(final: object) -> tuple[torch.Tensor, ...]:
    return tuple(final) if isinstance(final, tuple) else (final,)


def initial(mode: str, layers: int, directions: int, batch: int) -> object:
    h = torch.randn(layers * directions, batch, 7)
    return (h, torch.randn_like(h)) if mode == "lstm" else h


def assert_same(ours: Recurrent, oracle: torch.nn.RNNBase, out: torch.Tensor, ref: torch.Tensor, final: object, ref_final: object) -> None:
    torch.testing.assert_close(out, ref, **TOL)
    for a, b in zip(states(final), states(ref_final), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    # one scalar touching outputs and every final state, so every gradient path is checked
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum() + sum((s**2).sum() for s in states(final))
    ref_loss = (ref * torch.linspace(-1, 1, ref.shape[-1])).sum() + sum((s**2).sum() for s in states(ref_final))
    loss.backward()
    ref_loss.backward()
    ref_grads = dict(oracle.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name].grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("impl", ["explicit", "fused"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, False), (2, True)])
def test_dense_batch_equals_torch(mode: str, impl: str, layers: int, bidirectional: bool) -> None:
    ours, oracle = pair(mode, impl, layers, bidirectional)
    x = torch.randn(3, 6, 5)
    hx = initial(mode, layers, 2 if bidirectional else 1, 3)
    out, final = ours(x, hx)
    ref, ref_final = oracle(x, hx)
    assert_same(ours, oracle, out, ref, final, ref_final)


@pytest.mark.parametrize("impl", ["explicit", "fused"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_variable_lengths_equal_torch_packed(mode: str, impl: str, bidirectional: bool) -> None:
    ours, oracle = pair(mode, impl, 2, bidirectional)
    x = torch.randn(4, 6, 5)
    lengths = torch.tensor([3, 6, 1, 4])  # unsorted: the batch order must come back
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    hx = initial(mode, 2, 2 if bidirectional else 1, 4)  # in the batch's order, as torch takes it
    ref_packed, ref_final = oracle(packed, hx)
    ref, _ = pad_packed_sequence(ref_packed, batch_first=True, total_length=6)

    out_packed, final = ours(packed, hx)  # a PackedSequence in, a PackedSequence out
    assert torch.equal(out_packed.batch_sizes, ref_packed.batch_sizes)
    assert torch.equal(out_packed.unsorted_indices, ref_packed.unsorted_indices)
    out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=6)
    assert_same(ours, oracle, out, ref, final, ref_final)

    ours.zero_grad()
    oracle.zero_grad()
    ref_packed, ref_final = oracle(packed)  # and from zeros
    ref, _ = pad_packed_sequence(ref_packed, batch_first=True, total_length=6)
    out, final = ours(x, lengths=lengths)  # padded input with lengths: padded steps are zeros
    assert out.shape == (4, 6, 7 * (2 if bidirectional else 1))
    assert_same(ours, oracle, out, ref, final, ref_final)


@pytest.mark.parametrize("impl", ["explicit", "fused"])
def test_time_major_and_no_initial_state(impl: str) -> None:
    ours, oracle = pair("lstm", impl, 2, False, batch_first=False)
    x = torch.randn(6, 3, 5)  # (T, B, in)
    out, final = ours(x)
    ref, ref_final = oracle(x)
    assert_same(ours, oracle, out, ref, final, ref_final)


@pytest.mark.parametrize(("cell", "mode"), [(RNNCell, "rnn"), (LSTMCell, "lstm"), (GRUCell, "gru")])
def test_cells_equal_torch_cells(cell: type, mode: str) -> None:
    torch.manual_seed(0)
    oracle = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[mode](5, 7)
    ours = cell(5, 7)
    ours.load_state_dict(oracle.state_dict())
    x, h = torch.randn(3, 5), torch.randn(3, 7)
    if mode == "lstm":
        c = torch.randn(3, 7)
        for a, b in zip(ours(x, (h, c)), oracle(x, (h, c)), strict=True):
            torch.testing.assert_close(a, b, **TOL)
    else:
        torch.testing.assert_close(ours(x, (h,))[0], oracle(x, h), **TOL)


def test_a_wrong_gate_order_would_be_caught() -> None:
    """The oracle test can fail: swapping the forget and input gate rows changes the output."""
    ours, oracle = pair("lstm", "explicit", 1, False)
    with torch.no_grad():
        w = ours.weight_ih_l0
        w.copy_(torch.cat([w[7:14], w[:7], w[14:]]))
    x = torch.randn(2, 4, 5)
    assert not torch.allclose(ours(x)[0], oracle(x)[0], atol=1e-3)


def test_dropout_between_layers_only_in_training() -> None:
    ours = Recurrent("gru", 5, 7, 2, dropout=0.5, batch_first=True).eval()
    x = torch.randn(2, 4, 5)
    assert torch.equal(ours(x)[0], ours(x)[0])
    ours.train()
    torch.manual_seed(1)
    a = ours(x)[0]
    torch.manual_seed(2)
    assert not torch.equal(a, ours(x)[0])


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mode"):
        Recurrent("elman", 5, 7)  # type: ignore[arg-type]
