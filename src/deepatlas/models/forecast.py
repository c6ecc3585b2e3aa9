"""Window forecasters: (B, context, channels) input windows -> (B, num_outputs) forecasts.

``num_outputs`` is what the forecasting task asks for: horizon point forecasts, or horizon * Q
quantile outputs (the task reshapes them). ``context`` and ``input_size`` (channels per step:
the value, then the covariates) come from the data.

- **mlp-forecaster**: the window flattened to c * k numbers, then an MLP
  h_l = phi(W_l h_{l-1} + b_l), output W_out h_depth + b_out (a direct multi-horizon forecaster).
- **nbeats**: N-BEATS, generic architecture (Oreshkin, Carpov, Chapados & Bengio, 2020, ICLR,
  sec. 3.1-3.3). Block l takes the residual input x_l and computes
  h_{l,1..4} = FC-ReLU stack (eq. 1), theta^b_l = W^b h_{l,4}, theta^f_l = W^f h_{l,4} (eq. 2),
  the backcast xhat_l = V^b theta^b_l and the block forecast yhat_l = V^f theta^f_l (the generic
  basis: learnt linear maps, eq. 3 with g = a linear layer). Doubly residual stacking (eq. 4)::

      x_{l+1} = x_l - xhat_l,        yhat = sum_l yhat_l

  Blocks are grouped in stacks (a stack only sums its blocks' forecasts, so the total forecast is
  the sum over all blocks). With covariates the flattened c * k window is the residual stream (the
  paper is univariate; the backcast then also explains the covariates).
- **nbeats-interpretable** (sec. 3.3): fixed bases instead of the learnt V. A trend stack uses the
  polynomial basis T = [1, t, ..., t^p] (eq. 6; t = (0, 1, ..., H - 1) / H for the forecast and
  (0, ..., L - 1) / L for the backcast), a seasonality stack the Fourier basis
  S = [1, cos(2 pi i t), sin(2 pi i t)], i = 1..floor(H/2 - 1) (eq. 7; the backcast on the grid
  (0, ..., L - 1) / H, the same frequencies continued backwards, as in the authors' code), with
  the blocks' weights shared within a stack. Stacks alternate trend, seasonality. With Q quantile
  outputs per step (num_outputs = H * Q) each basis gets Q coefficient vectors, one curve per level.
- **lstm-forecaster / gru-forecaster**: a recurrent encoder (:class:`deepatlas.nn.recurrent.Recurrent`)
  reads the window step by step, h_t = cell(x_t, h_{t-1}); the top layer's last state h_c goes through
  a linear layer to all ``num_outputs`` at once (a direct multi-horizon "encoder" forecaster, the
  encoder of MQ-RNN, Wen et al. 2017, with a linear decoder).
- **transformer-forecaster**: PatchTST (Nie, Nguyen, Sinthong & Kalagnanam, ICLR 2023, sec. 3.1): the
  window, padded at its end with ``stride`` copies of its last step, is cut into patches of
  ``patch_len`` steps every ``stride`` steps, N = floor((c - P) / S) + 2 of them; each patch (P steps
  x channels, flattened) is a token x_p W_p + W_pos (a linear projection and learnt positions), then
  our Transformer encoder blocks (:class:`deepatlas.nn.transformer.TransformerBlock`, pre-LN; the
  paper uses BatchNorm), then the "flatten head": the N x d outputs flattened and mapped linearly to
  ``num_outputs``. Deviations, for one target with covariates: the channels of a patch are embedded
  together (the paper forecasts every channel, each through the shared model separately:
  channel independence), and instance normalisation (RevIN) is the task's ``normalize=last``.
  ``patch_len=1, stride=1`` is a Transformer over single time steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..nn import hidden_stack
from ..nn.recurrent import Recurrent
from ..nn.transformer import TransformerBlock
from ..registry import register_model
from ..schema import option


@dataclass(frozen=True)
class MLPForecasterConfig:
    context: int = option(24, "input window length in steps (from the data)", low=1)
    input_size: int = option(1, "channels per step: the value, then the covariates (from the data)", low=1)
    num_outputs: int = option(12, "outputs: horizon, or horizon * quantile levels (from the task)", low=1)
    depth: int = option(2, "hidden layers", low=0)
    width: int = option(256, "units per hidden layer", low=1)
    dropout: float = option(0.0, "dropout after each hidden layer", low=0.0, high=1.0)


class MLPForecaster(nn.Module):
    """Flatten the window, MLP, linear head to ``num_outputs``."""

    def __init__(self, config: MLPForecasterConfig) -> None:
        super().__init__()
        self.config = c = config
        width_in = c.context * c.input_size
        self.body = hidden_stack(width_in, c.depth, c.width, "relu", "none", c.dropout)
        self.head = nn.Linear(c.width if c.depth else width_in, c.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1)))  # (B, num_outputs)


@dataclass(frozen=True)
class NBeatsConfig:
    context: int = option(24, "input window length in steps (from the data)", low=1)
    input_size: int = option(1, "channels per step: the value, then the covariates (from the data)", low=1)
    num_outputs: int = option(12, "outputs: horizon, or horizon * quantile levels (from the task)", low=1)
    stacks: int = option(2, "stacks of blocks (generic architecture)", low=1)
    blocks: int = option(3, "blocks per stack", low=1)
    layers: int = option(4, "fully connected ReLU layers per block (the paper: 4)", low=1)
    width: int = option(256, "units per layer (the paper: 512)", low=1)
    theta: int = option(32, "expansion coefficients per head (theta^b, theta^f)", low=1)
    share_weights: bool = option(False, "share the blocks' weights within a stack (the paper's interpretable setting)")
    architecture: Literal["generic", "interpretable"] = option(
        "generic", "generic: learnt linear bases; interpretable: alternating trend (polynomial) and seasonality (Fourier) stacks")
    horizon: int = option(12, "forecast steps (from the data; the interpretable bases are curves over them)", low=1)
    degree: int = option(3, "interpretable: the trend polynomial's degree p", low=0)


class NBeatsBlock(nn.Module):
    """FC stack, then theta^b, theta^f and the generic linear bases: x -> (backcast, forecast)."""

    def __init__(self, length: int, outputs: int, c: NBeatsConfig, backcast: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(c.layers):
            layers += [nn.Linear(length if i == 0 else c.width, c.width), nn.ReLU()]
        self.fc = nn.Sequential(*layers)
        self.theta_f, self.basis_f = nn.Linear(c.width, c.theta, bias=False), nn.Linear(c.theta, outputs)
        # the last block's backcast feeds nothing (eq. 4 ends with its forecast): it has no backcast head
        self.theta_b = nn.Linear(c.width, c.theta, bias=False) if backcast else None
        self.basis_b = nn.Linear(c.theta, length) if backcast else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        h = self.fc(x)
        backcast = self.basis_b(self.theta_b(h)) if self.basis_b is not None and self.theta_b is not None else None
        return backcast, self.basis_f(self.theta_f(h))


def trend_basis(steps: int, scale: int, degree: int) -> torch.Tensor:
    """(p + 1, steps): rows t^0..t^p on t = (0..steps-1) / scale (eq. 6)."""
    t = torch.arange(steps, dtype=torch.float64) / scale
    return torch.stack([t**i for i in range(degree + 1)]).float()


def fourier_basis(steps: int, scale: int, horizon: int) -> torch.Tensor:
    """(1 + 2 n, steps): 1, cos(2 pi i t), sin(2 pi i t) for i = 1..n, n = max(1, floor(H/2 - 1)), t = (0..steps-1) / scale (eq. 7)."""
    t = torch.arange(steps, dtype=torch.float64) / scale
    i = torch.arange(1, max(1, math.floor(horizon / 2 - 1)) + 1, dtype=torch.float64)[:, None]
    return torch.cat([torch.ones(1, steps, dtype=torch.float64), torch.cos(2 * math.pi * i * t), torch.sin(2 * math.pi * i * t)]).float()


class BasisBlock(nn.Module):
    """An interpretable block: the FC stack, theta^b and theta^f, and fixed bases (trend or seasonality)."""

    def __init__(self, length: int, c: NBeatsConfig, kind: str, backcast: bool = True) -> None:
        super().__init__()
        if c.num_outputs % c.horizon:
            raise ConfigError(f"model.num_outputs: {c.num_outputs} is not a multiple of model.horizon {c.horizon} (leave both to the data and the task).")
        self.levels = c.num_outputs // c.horizon
        layers: list[nn.Module] = []
        for i in range(c.layers):
            layers += [nn.Linear(length if i == 0 else c.width, c.width), nn.ReLU()]
        self.fc = nn.Sequential(*layers)
        if kind == "trend":
            fb, bb = trend_basis(c.horizon, c.horizon, c.degree), trend_basis(length, length, c.degree)
        else:
            fb, bb = fourier_basis(c.horizon, c.horizon, c.horizon), fourier_basis(length, c.horizon, c.horizon)
        self.register_buffer("forecast_basis", fb, persistent=False)
        self.register_buffer("backcast_basis", bb, persistent=False)
        self.theta_f = nn.Linear(c.width, self.levels * fb.shape[0])
        self.theta_b = nn.Linear(c.width, bb.shape[0]) if backcast else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        h = self.fc(x)
        theta = self.theta_f(h).reshape(len(x), self.levels, -1)  # (B, Q, dim)
        forecast = (theta @ self.forecast_basis).transpose(1, 2).flatten(1)  # (B, H, Q) -> (B, H * Q)
        backcast = self.theta_b(h) @ self.backcast_basis if self.theta_b is not None else None
        return backcast, forecast


class NBeats(nn.Module):
    """Doubly residual stacks of generic blocks (module docstring, eq. 4)."""

    def __init__(self, config: NBeatsConfig) -> None:
        super().__init__()
        self.config = c = config
        length = c.context * c.input_size
        blocks: list[nn.Module] = []
        for s in range(c.stacks):
            def block(backcast: bool, s: int = s) -> nn.Module:
                if c.architecture == "interpretable":
                    return BasisBlock(length, c, "trend" if s % 2 == 0 else "seasonality", backcast)
                return NBeatsBlock(length, c.num_outputs, c, backcast)

            if c.share_weights:
                blocks += [block(s < c.stacks - 1 or c.blocks > 1)] * c.blocks
            else:
                blocks += [block(s < c.stacks - 1 or b < c.blocks - 1) for b in range(c.blocks)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x.flatten(1)
        forecast = torch.zeros(residual.shape[0], self.config.num_outputs, device=x.device, dtype=residual.dtype)
        for i, block in enumerate(self.blocks):
            backcast, block_forecast = block(residual)
            if i < len(self.blocks) - 1 and backcast is not None:
                residual = residual - backcast
            forecast = forecast + block_forecast
        return forecast  # (B, num_outputs)


@dataclass(frozen=True)
class RecurrentForecasterConfig:
    context: int = option(24, "input window length in steps (from the data)", low=1)
    input_size: int = option(1, "channels per step: the value, then the covariates (from the data)", low=1)
    num_outputs: int = option(12, "outputs: horizon, or horizon * quantile levels (from the task)", low=1)
    mode: Literal["rnn", "lstm", "gru"] = option("lstm", "recurrent cell: Elman (tanh), LSTM or GRU")
    hidden: int = option(64, "hidden state width of each layer", low=1)
    layers: int = option(2, "stacked recurrent layers", low=1)
    dropout: float = option(0.0, "dropout between layers and before the head", low=0.0, high=1.0)
    impl: Literal["explicit", "fused"] = option("fused", "torch's fused kernels or the explicit step-by-step equations")


class RecurrentForecaster(nn.Module):
    """Recurrent encoder over the window; the top layer's last hidden state -> linear -> ``num_outputs``."""

    def __init__(self, config: RecurrentForecasterConfig) -> None:
        super().__init__()
        self.config = c = config
        self.rnn = Recurrent(c.mode, c.input_size, c.hidden, c.layers, batch_first=True, dropout=c.dropout, impl=c.impl)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, context, hidden)
        return self.head(self.drop(out[:, -1]))  # (B, num_outputs)


@dataclass(frozen=True)
class PatchTransformerConfig:
    context: int = option(24, "input window length in steps (from the data)", low=1)
    input_size: int = option(1, "channels per step: the value, then the covariates (from the data)", low=1)
    num_outputs: int = option(12, "outputs: horizon, or horizon * quantile levels (from the task)", low=1)
    patch_len: int = option(6, "steps per patch (P; the paper: 16 for its 336-step windows)", low=1)
    stride: int = option(3, "steps between patch starts (S; the paper: 8 = P / 2)", low=1)
    d_model: int = option(64, "token width (the paper: 128)", low=1)
    n_head: int = option(4, "attention heads (the paper: 16)", low=1)
    d_ff: int = option(128, "feed-forward width (the paper: 256)", low=1)
    n_layer: int = option(2, "encoder blocks (the paper: 3)", low=1)
    dropout: float = option(0.1, "dropout in the blocks and before the head (the paper: 0.2)", low=0.0, high=1.0)

    def validate(self, path: str) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(f"{path}.n_head: d_model ({self.d_model}) must be divisible by n_head ({self.n_head}).")
        if self.patch_len > self.context:
            raise ConfigError(f"{path}.patch_len: {self.patch_len} is longer than the window (data.context {self.context}); "
                              f"lower model.patch_len or raise data.context.")


class PatchTransformer(nn.Module):
    """PatchTST: patches of the window -> tokens -> Transformer encoder -> flatten -> linear (module docstring)."""

    def __init__(self, config: PatchTransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.patches = (c.context - c.patch_len) // c.stride + 2  # N, with the end padded by S copies of the last step
        self.embed = nn.Linear(c.patch_len * c.input_size, c.d_model)
        self.position = nn.Parameter(torch.empty(self.patches, c.d_model).uniform_(-0.02, 0.02))
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_head, c.d_ff, dropout=c.dropout, activation="gelu", norm_first=True)
            for _ in range(c.n_layer)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(self.patches * c.d_model, c.num_outputs)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, context, channels) -> (B, N, patch_len * channels): the window padded at its end, cut every stride steps."""
        c = self.config
        x = torch.cat([x, x[:, -1:].expand(-1, c.stride, -1)], dim=1)  # (B, context + S, channels)
        patches = x.unfold(1, c.patch_len, c.stride)  # (B, N, channels, P)
        return patches.transpose(2, 3).flatten(2)  # (B, N, P * channels), step-major within a patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.embed(self.patchify(x)) + self.position)
        for block in self.blocks:
            h = block(h)
        return self.head(self.drop(self.norm(h).flatten(1)))  # (B, num_outputs)


register_model("lstm-forecaster", RecurrentForecaster, RecurrentForecasterConfig(mode="lstm"), family="forecast",
               doc="recurrent encoder forecaster: 2 LSTM layers x 64 over the window, last state -> linear -> horizon outputs")
register_model("gru-forecaster", RecurrentForecaster, RecurrentForecasterConfig(mode="gru"), family="forecast",
               doc="recurrent encoder forecaster: 2 GRU layers x 64 over the window, last state -> linear -> horizon outputs")
register_model("transformer-forecaster", PatchTransformer, PatchTransformerConfig(), family="forecast",
               doc="PatchTST (Nie et al. 2023): patches of 6 steps (stride 3) -> 2 pre-LN Transformer blocks (64 wide) -> flatten head")
register_model("mlp-forecaster", MLPForecaster, MLPForecasterConfig(), family="forecast",
               doc="window forecaster: flattened input window -> MLP (2 x 256 ReLU) -> horizon outputs")
register_model("nbeats-interpretable", NBeats, NBeatsConfig(architecture="interpretable", share_weights=True, blocks=3, width=256),
               family="forecast", doc="N-BEATS interpretable (Oreshkin et al. 2020): a trend (cubic) and a seasonality (Fourier) stack")
register_model("nbeats", NBeats, NBeatsConfig(), family="forecast",
               doc="N-BEATS generic (Oreshkin et al. 2020): 2 stacks x 3 blocks of 4 FC layers, doubly residual")
