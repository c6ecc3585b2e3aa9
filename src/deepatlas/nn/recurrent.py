"""Recurrent layers written as their equations: Elman RNN, LSTM and GRU.

Per time step t, with input x_t and the previous state (h, c):

- Elman RNN (Elman 1990): h_t = tanh(W_ih x_t + b_ih + W_hh h + b_hh).
- LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers, Schmidhuber & Cummins 2000):
  [i, f, g, o] = W_ih x_t + b_ih + W_hh h + b_hh (four blocks of H rows, in that order);
  i, f, o = sigmoid(.), g = tanh(.);  c_t = f * c + i * g;  h_t = o * tanh(c_t)  (element-wise).
- GRU (Cho et al. 2014), in torch's convention (the reset gate multiplies W_hn h + b_hn):
  r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h_t = (1 - z) * n + z * h.

The parameters have torch.nn.RNN/LSTM/GRU's names and shapes (``weight_ih_l{k}``
(G*H, in), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``_reverse`` for
the backward direction, G = 1, 4, 3), so state dicts move between the two unchanged.
:class:`Recurrent` stacks layers (dropout between them, as torch), optionally bidirectional
(the backward direction reads each sequence from its last valid step to its first), and takes
variable-length batches as a PackedSequence or as padded input with ``lengths``.
``impl="explicit"`` runs the equations above step by step (the input projections of all
steps in one matrix product first); ``impl="fused"`` hands the same parameters to torch's
fused kernels (cuDNN on GPU). Both give the same outputs, states and gradients (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..errors import ConfigError

Mode = Literal["rnn", "lstm", "gru"]
State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (B, H)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


# --------------------------------------------------------------------------- one step of each cell

def rnn_step(gx: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor | None) -> State:
    """Elman: h_t = tanh(gx + W_hh h + b_hh), with gx = W_ih x_t + b_ih precomputed."""
    return (torch.tanh(gx + F.linear(state[0], w_hh, b_hh)),)


def lstm_step(gx: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor | None) -> State:
    """LSTM: gates i, f, g, o; c_t = f * c + i * g; h_t = o * tanh(c_t)."""
    h, c = state
    i, f, g, o = (gx + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
    c_t = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_t), c_t


def gru_step(gx: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor | None) -> State:
    """GRU: r, z gates; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h_t = (1 - z) * n + z * h."""
    h = state[0]
    x_r, x_z, x_n = gx.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return ((1 - z) * n + z * h,)


STEPS: dict[str, Callable[..., State]] = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}


class _Cell(nn.Module):
    """One cell, torch.nn.RNNCell/LSTMCell/GRUCell's parameters: ``forward(x (B, in), state) -> state``."""

    mode: Mode = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = GATES[self.mode] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias else None
        bound = hidden_size**-0.5  # torch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) everywhere
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def zero_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(batch, self.hidden_size)
        return (zeros, zeros) if self.mode == "lstm" else (zeros,)

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        state = state if state is not None else self.zero_state(x.shape[0], x)
        return STEPS[self.mode](F.linear(x, self.weight_ih, self.bias_ih), state, self.weight_hh, self.bias_hh)


class RNNCell(_Cell):
    """Elman cell (tanh): returns (h_t,)."""

    mode = "rnn"


class LSTMCell(_Cell):
    """LSTM cell with a forget gate: returns (h_t, c_t)."""

    mode = "lstm"


class GRUCell(_Cell):
    """GRU cell: returns (h_t,)."""

    mode = "gru"


# --------------------------------------------------------------------------- the explicit recurrence

def run_direction(
    mode: Mode, gx: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
    mask: torch.Tensor | None, reverse: bool,
) -> tuple[torch.Tensor, State]:
    """One layer, one direction over time-major gx (T, B, G*H); returns outputs (T, B, H) and the last state.

    ``mask`` (T, B, 1) marks valid steps: a padded step keeps the state and outputs zeros. The
    backward direction runs from T-1 down; padding sits at the end of each row, so the state is
    still the initial one when a row's last valid step arrives.
    """
    step = STEPS[mode]
    outputs: list[torch.Tensor] = [gx.new_empty(0)] * gx.shape[0]
    for t in (range(gx.shape[0] - 1, -1, -1) if reverse else range(gx.shape[0])):
        new = step(gx[t], state, w_hh, b_hh)
        if mask is not None:
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state, strict=True))
            outputs[t] = new[0] * mask[t]
        else:
            outputs[t] = new[0]
        state = new
    return torch.stack(outputs), state


def torch_class(mode: Mode) -> type[nn.RNNBase]:
    """torch.nn.RNN, LSTM or GRU: the module whose parameters and outputs ours equal."""
    return {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[mode]


class Recurrent(nn.Module):
    """Stacked, optionally bidirectional RNN/LSTM/GRU with torch.nn.LSTM's interface and parameters.

    ``forward(input, hx=None, lengths=None) -> (output, h_n)`` (LSTM: ``(output, (h_n, c_n))``).
    ``input``: (B, T, in) if batch_first else (T, B, in), or a PackedSequence (the output is then
    packed the same way). ``lengths`` (B,): valid steps of each padded row; padded output steps are
    zeros. h_n, c_n: (num_layers * directions, B, H), layer-major, forward before backward.
    """

    #: ``train.precision: auto`` keeps models with recurrent layers in float32 (engine.device.bf16_blocker):
    #: torch's fused kernel has no bf16 CPU path, and a bf16 state would round at every one of T steps
    keeps_float32 = True

    def __init__(
        self, mode: Mode, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
        batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
        impl: Literal["explicit", "fused"] = "explicit",
    ) -> None:
        super().__init__()
        if mode not in GATES:
            raise ConfigError(f"mode: {mode!r} is not a recurrent cell (allowed: {', '.join(GATES)}).")
        if impl not in ("explicit", "fused"):
            raise ConfigError(f"impl: {impl!r} is not an implementation (allowed: explicit, fused).")
        self.mode, self.impl = mode, impl
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        self.directions = 2 if bidirectional else 1
        rows = GATES[mode] * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * self.directions
            for suffix in self._suffixes(layer):
                self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(rows, width)))
                self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(rows, hidden_size)))
                if bias:
                    self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(rows)))
                    self.register_parameter(f"bias_hh{suffix}", nn.Parameter(torch.empty(rows)))
        self.reset_parameters()
        # torch's module, built on `meta` (no memory) and kept out of the module tree: the fused
        # path calls it with our parameters, so there is one set of weights.
        with torch.device("meta"):
            self._fused = (torch_class(mode)(
                input_size, hidden_size, num_layers, bias=bias, batch_first=False, dropout=dropout,
                bidirectional=bidirectional,
            ),)

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.directions]

    def reset_parameters(self) -> None:
        bound = self.hidden_size**-0.5  # torch's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}, impl={self.impl}")

    def forward(
        self, input: torch.Tensor | PackedSequence, hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | PackedSequence, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            x, lengths = pad_packed_sequence(packed, batch_first=False)  # (T, B, in), original batch order
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
        h0 = self._initial_state(hx, x)
        if self.impl == "fused" and lengths is None:  # torch's kernel on the batch as given: no transposes
            out, h_n = self._forward_fused_dense(input, h0)  # type: ignore[arg-type]
            return out, ((h_n[0], h_n[1]) if self.mode == "lstm" else h_n[0])
        if self.impl == "fused":
            out, h_n = self._forward_fused(x, h0, lengths)  # type: ignore[arg-type]
        else:
            out, h_n = self._forward_explicit(x, h0, lengths)
        final = (h_n[0], h_n[1]) if self.mode == "lstm" else h_n[0]
        if packed is not None:
            return _repack(out, lengths, packed), final
        return (out.transpose(0, 1) if self.batch_first else out), final

    def _initial_state(self, hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None, x: torch.Tensor) -> State:
        if hx is None:
            zeros = x.new_zeros(self.num_layers * self.directions, x.shape[1], self.hidden_size)
            return (zeros, zeros) if self.mode == "lstm" else (zeros,)
        return tuple(hx) if self.mode == "lstm" else (hx,)  # type: ignore[arg-type]

    def _forward_explicit(self, x: torch.Tensor, h0: State, lengths: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        mask = None
        if lengths is not None:
            mask = (torch.arange(x.shape[0])[:, None] < lengths[None, :]).to(x.device)[..., None]  # (T, B, 1)
        finals: list[State] = []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                k = layer * self.directions + d
                gx = F.linear(x, getattr(self, f"weight_ih{suffix}"), getattr(self, f"bias_ih{suffix}", None))  # all steps at once
                out, state = run_direction(
                    self.mode, gx, tuple(s[k] for s in h0), getattr(self, f"weight_hh{suffix}"),
                    getattr(self, f"bias_hh{suffix}", None), mask, reverse=d == 1,
                )
                outs.append(out)
                finals.append(state)
            x = torch.cat(outs, dim=-1) if self.directions == 2 else outs[0]
            if layer < self.num_layers - 1 and self.dropout > 0:  # between layers, as torch
                x = F.dropout(x, self.dropout, self.training)
        return x, tuple(torch.stack([f[i] for f in finals]) for i in range(len(h0)))

    def _forward_fused_dense(self, x: torch.Tensor, h0: State) -> tuple[torch.Tensor, State]:
        """Unpadded sequences: the aten op torch.nn.LSTM (GRU, RNN) itself calls, with our parameters in its flat
        order (per layer and direction: weight_ih, weight_hh, bias_ih, bias_hh), so no module swap per call."""
        weights = list(self.parameters())
        args = (weights, self.bias, self.num_layers, self.dropout, self.training, self.bidirectional, self.batch_first)
        if self.mode == "lstm":
            out, h, c = torch.lstm(x, (h0[0], h0[1]), *args)
            return out, (h, c)
        out, h = (torch.gru if self.mode == "gru" else torch.rnn_tanh)(x, h0[0], *args)
        return out, (h,)

    def _forward_fused(self, x: torch.Tensor, h0: State, lengths: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Sequences of several lengths: torch's module on a packed batch (it sorts the batch and the initial
        state by length and back), called with our parameters."""
        module = self._fused[0]
        module.train(self.training)
        params = dict(self.named_parameters())
        hx = (h0[0], h0[1]) if self.mode == "lstm" else h0[0]
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h_n = functional_call(module, params, (packed, hx))
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return out, (tuple(h_n) if self.mode == "lstm" else (h_n,))


def _repack(out: torch.Tensor, lengths: torch.Tensor, like: PackedSequence) -> PackedSequence:
    """Padded time-major output (T, B, H) -> a PackedSequence with ``like``'s batch order."""
    order = like.sorted_indices
    if order is None:  # packed from rows already sorted by length
        return pack_padded_sequence(out, lengths, enforce_sorted=True)
    sorted_out = pack_padded_sequence(out[:, order.to(out.device)], lengths[order.cpu()], enforce_sorted=True)
    return PackedSequence(sorted_out.data, sorted_out.batch_sizes, like.sorted_indices, like.unsorted_indices)
