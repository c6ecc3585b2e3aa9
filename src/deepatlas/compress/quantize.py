"""Post-training int8 quantization (dynamic, static with calibration) and quantization-aware training.

Affine int8: q = clamp(round(x / s) + z, q_min, q_max), x ~ s (q - z), with a scale s and zero point z per
tensor (activations) or per output channel (weights), from the observed ranges (Jacob et al. 2018,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference").

- ``dynamic``: the weights of Linear, LSTM and GRU layers become int8 once; activations are quantized on
  the fly from their range in each batch. Nothing to calibrate; suits transformers, MLPs and RNNs, whose
  time goes into matrix products.
- ``static``: weights (per channel) and activations (per tensor, ranges from a histogram observer) of the
  whole network become int8: the graph is traced (``torch.ao.quantization.quantize_fx``), batch norms folded
  into the convolutions, convolution + ReLU fused, observers calibrated on ``calibration`` training batches,
  then converted to the x86 backend's int8 kernels (fbgemm / oneDNN). Suits CNNs.
- ``qat``: fake-quantization in the forward pass while fine-tuning (straight-through gradients), then the
  same conversion as static.

Which API: PyTorch 2.13 marks ``torch.ao.quantization`` deprecated (its notice points eager and FX users
to torchao, whose PT2E flow ``prepare_pt2e``/``convert_pt2e`` is the successor; PT2E itself moved out of
torch into torchao). The PT2E graph runs in int8 only once ``torch.compile`` lowers it (in eager it executes
quantize/dequantize around float kernels); the FX flow used here converts to int8 CPU kernels that run in
eager mode and serialize as plain tensors. The deprecation notice is silenced where these calls are made;
the rest of torch.ao's behaviour is unchanged. When torch removes it, this module moves to torchao's PT2E.

A quantized run stores the float weights (``best.safetensors``, as every run) and ``quantization.safetensors``:
for ``static``/``qat`` the calibrated observers' statistics, so that ``restore`` rebuilds exactly the int8
network that was measured (no pickle, no calibration data at load time).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, one_of, suggest

MODES = ("dynamic", "static", "qat")
BACKEND = "x86"
FILE = "quantization.safetensors"
DYNAMIC_TYPES = (nn.Linear, nn.LSTM, nn.GRU)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"--mode: {mode!r} is not a quantization mode (one of: {one_of(MODES)})." + suggest(mode, MODES))
    return mode


@contextlib.contextmanager
def _ao() -> Iterator[None]:
    """torch.ao.quantization's deprecation notices (see the module docstring), and the x86 engine."""
    previous = torch.backends.quantized.engine
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated.*")
        warnings.filterwarnings("ignore", message=r".*must run observer before calling calculate_qparams.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")
        torch.backends.quantized.engine = BACKEND
        try:
            yield
        finally:
            torch.backends.quantized.engine = previous


def dynamic(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with int8 Linear/LSTM/GRU weights and dynamically quantized activations."""
    if not any(isinstance(m, DYNAMIC_TYPES) for m in model.modules()):
        raise ConfigError(
            f"--mode dynamic: {type(model).__name__} has no Linear, LSTM or GRU layer to quantize"
            + ("; use --mode static (its convolutions are)." if any(isinstance(m, nn.Conv2d) for m in model.modules()) else ".")
        )
    with _ao():
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(model).float().eval().cpu(), set(DYNAMIC_TYPES), dtype=torch.qint8)


def prepare(model: nn.Module, example: Sequence[torch.Tensor], qat: bool = False) -> nn.Module:
    """A traced copy of ``model`` with observers (``qat``: fake-quantizers) where int8 will go."""
    with _ao():
        from torch.ao.quantization import (
            get_default_qat_qconfig_mapping,
            get_default_qconfig_mapping,
        )
        from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

        model = copy.deepcopy(model).float().cpu().to(memory_format=torch.contiguous_format)
        args = tuple(a.cpu() for a in example)
        try:
            if qat:
                return prepare_qat_fx(model.train(), get_default_qat_qconfig_mapping(BACKEND), args)
            return prepare_fx(model.eval(), get_default_qconfig_mapping(BACKEND), args)
        except Exception as exc:  # symbolic tracing fails on data-dependent control flow
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"--mode {'qat' if qat else 'static'}: {type(model).__name__} cannot be traced for static quantization "
                f"({type(exc).__name__}: {reason})"
                + ("; use --mode dynamic (its Linear/LSTM/GRU layers)." if any(isinstance(m, DYNAMIC_TYPES) for m in model.modules())
                   else "; it has no Linear, LSTM or GRU layer for --mode dynamic either: int8 is not available for this network.")
            ) from None


@torch.no_grad()
def calibrate(prepared: nn.Module, batches: Iterable[Sequence[torch.Tensor]], limit: int) -> int:
    """Run up to ``limit`` batches of inputs through the observers; the number of examples seen."""
    prepared.eval()
    seen = 0
    with _ao():
        for i, args in enumerate(batches):
            if i >= limit:
                break
            prepared(*(a.cpu().float() if a.is_floating_point() else a.cpu() for a in args))
            seen += len(args[0])
    return seen


def convert(prepared: nn.Module) -> nn.Module:
    """The int8 network of a calibrated (or QAT-trained) prepared one."""
    with _ao():
        from torch.ao.quantization.quantize_fx import convert_fx

        return convert_fx(copy.deepcopy(prepared).eval())


def observer_state(prepared: nn.Module) -> dict[str, torch.Tensor]:
    """The prepared network's whole state (float weights and observer statistics) as plain tensors."""
    return {k: v.detach().cpu().contiguous() for k, v in prepared.state_dict().items() if isinstance(v, torch.Tensor)}


def restore(model: nn.Module, mode: str, state: Mapping[str, torch.Tensor] | None, example: Sequence[torch.Tensor]) -> nn.Module:
    """The int8 network a quantized run measured, rebuilt from its float ``model`` and its saved ``state``."""
    if mode == "dynamic":
        return dynamic(model)
    prepared = prepare(model, example, qat=mode == "qat")
    with _ao():
        prepared.load_state_dict(dict(state or {}))
    return convert(prepared.eval())


def load_quantized(run: Any, model: nn.Module) -> nn.Module:
    """The int8 network of a quantized run, rebuilt from its float weights (``model``) and saved observers."""
    from ..engine.checkpoint import load_checkpoint

    info = run.summary.get("lineage") or {}
    mode = info.get("mode", "static")
    meta = (run.summary.get("data") or {}).get("meta") or {}
    state = load_checkpoint(run.path / FILE)["observers"] if mode != "dynamic" else None
    return restore(model.cpu().eval(), mode, state, example_inputs(meta) if mode != "dynamic" else ())


def example_inputs(meta: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
    """One zero image of the data's shape, for tracing (image classifiers)."""
    channels, side = meta.get("in_channels"), meta.get("input_size")
    if not isinstance(channels, int) or not isinstance(side, int):
        raise ConfigError("--mode static: needs image data (in_channels, input_size in the run's data meta); use --mode dynamic.")
    return (torch.zeros(1, channels, side, side),)


__all__ = [
    "BACKEND", "FILE", "MODES", "calibrate", "check_mode", "convert", "dynamic", "example_inputs", "load_quantized", "observer_state",
    "prepare", "restore",
]
