"""Export a trained network to ONNX, a ``torch.export`` program or TorchScript, checked against the original.

Every format is written inside an export folder (``deepatlas export RUN -o DIR --format onnx``), beside the
config, weights and preprocessing that ``deepatlas.load(DIR)`` reads, and is checked when it is written:
the exported graph, loaded back the way a deployment loads it (onnxruntime for ONNX, ``torch.export.load``,
``torch.jit.load``), runs real inputs of the run's own data (the first test batch), and every output must
satisfy |exported - original| <= atol + rtol |original| (default atol 1e-4, rtol 1e-3, fp32). The batch
dimension is dynamic: the check also runs a batch of another size than the one the graph was traced with.
A failed check removes nothing the folder had before and raises a one-line error naming the model, the
format and the largest difference.

- ONNX: the ``torch.export``-based exporter (``torch.onnx.export(..., dynamo=True)``), opset 18, run
  with onnxruntime's CPU provider. Needs the ``export`` extra (``pip install deepatlas[export]``).
- exported-program: ``torch.export.export`` with symbolic batch (graphs: nodes, edges) dimensions,
  saved with ``torch.export.save`` (``model.pt2``).
- TorchScript: ``torch.jit.trace`` (``model.torchscript.pt``); PyTorch now recommends torch.export
  instead, TorchScript stays for deployments that still load it (libtorch, older mobile runtimes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, RunError, one_of, suggest
from ..io import atomic_path, write_json

log = logging.getLogger(__name__)

FORMATS = ("folder", "onnx", "exported-program", "torchscript")
ARTIFACTS = {"onnx": "model.onnx", "exported-program": "model.pt2", "torchscript": "model.torchscript.pt"}
ATOL, RTOL = 1e-4, 1e-3
EXPORT_ROWS = 16  # examples of the first batch the graph is traced with (the check also runs a smaller batch)


@dataclass(frozen=True)
class ExportCheck:
    """How an exported graph compared with the original on real inputs."""

    format: str
    file: str
    max_abs_error: float
    atol: float
    rtol: float
    batch_sizes: tuple[int, ...]
    runtime: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExportError(RunError):
    """A network that cannot be exported to a format, or whose export disagrees with it."""


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ConfigError(f"--format: {name!r} is not an export format (one of: {one_of(FORMATS)})." + suggest(name, FORMATS))
    return name


def require_onnx() -> None:
    """ONNX needs onnx, onnxscript and onnxruntime: the ``export`` extra, not the base install."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(
            f"--format onnx: needs {', '.join(missing)} (not installed); pip install 'deepatlas[export]' "
            "(or choose --format exported-program or torchscript)."
        )


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """The exporters' own chatter (progress lines, deprecation notices of their internals) stays out of the output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            levels = {name: logging.getLogger(name).level for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")}
            for name in levels:
                logging.getLogger(name).setLevel(logging.ERROR)
            try:
                yield
            finally:
                for name, level in levels.items():
                    logging.getLogger(name).setLevel(level)


def _first(out: Any) -> torch.Tensor:
    """The tensor a network returns (the first, when it returns several)."""
    if isinstance(out, (tuple, list)):
        return _first(out[0])
    if isinstance(out, Mapping):
        return _first(next(iter(out.values())))
    return out


def _rows(args: Sequence[torch.Tensor], dynamic: Sequence[Mapping[int, str]], n: int) -> tuple[torch.Tensor, ...]:
    """The first ``n`` examples of inputs whose dimension 0 is the batch."""
    return tuple(a[:n] if 0 in d and d[0] == "batch" else a for a, d in zip(args, dynamic, strict=True))


def _batch_sizes(args: Sequence[torch.Tensor], dynamic: Sequence[Mapping[int, str]]) -> tuple[int, ...]:
    """The batch sizes the check runs: the traced one and a smaller one (inputs with a batch dimension)."""
    batched = [a for a, d in zip(args, dynamic, strict=True) if d.get(0) == "batch"]
    if not batched:
        return (0,)  # one graph: nodes and edges as they are
    n = len(batched[0])
    return (n, max(1, n // 2 - 1)) if n > 2 else (n,)


def _dims(dynamic: Sequence[Mapping[int, str]]) -> tuple[dict[int, Any], ...]:
    """torch.export dimensions for the named dynamic axes (one symbol per name, shared between inputs)."""
    symbols: dict[str, Any] = {}
    return tuple({axis: symbols.setdefault(name, torch.export.Dim(name, min=1)) for axis, name in d.items()} for d in dynamic)


def _compare(expected: torch.Tensor, got: torch.Tensor, what: str, atol: float, rtol: float) -> float:
    got = torch.as_tensor(got).to(expected.dtype)
    if got.shape != expected.shape:
        raise ExportError(f"{what}: output shape {tuple(got.shape)} differs from the original's {tuple(expected.shape)}.")
    error = (got - expected).abs()
    worst = float(error.max()) if error.numel() else 0.0
    if not bool((error <= atol + rtol * expected.abs()).all()):
        raise ExportError(
            f"{what}: outputs differ from the original by up to {worst:.3g} (tolerance {atol:g} + {rtol:g} |y|); "
            "the export is not written."
        )
    return worst


def _reason(exc: BaseException) -> str:
    """The first line of the innermost cause of an exporter's error, without terminal colours."""
    import re

    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {line[:300]}" if line else type(exc).__name__


def _export_onnx(model: nn.Module, args: tuple[torch.Tensor, ...], names: Sequence[str], dynamic: Any, path: Path) -> None:
    program = torch.onnx.export(
        model, args, dynamo=True, input_names=list(names), output_names=["output"], dynamic_shapes=dynamic,
        opset_version=18, verbose=False, report=False,
    )
    program.save(str(path))


def _run_onnx(path: Path, names: Sequence[str], args: Sequence[torch.Tensor]) -> torch.Tensor:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}  # an input the graph does not read is dropped by the exporter
    feeds = {n: a.numpy() for n, a in zip(names, args, strict=True) if n in wanted}
    return torch.from_numpy(session.run(None, feeds)[0])


def write_artifact(
    model: nn.Module, inputs: Any, fmt: str, folder: Path, what: str, *, atol: float = ATOL, rtol: float = RTOL,
) -> ExportCheck:
    """Export ``model`` (fp32, eval, CPU) in ``fmt`` into ``folder``, load it back, and check it on ``inputs``
    (an :class:`~deepatlas.tasks.base.ExportInputs`) at every batch size of the check; ``what`` names the model."""
    if fmt == "onnx":
        require_onnx()
    model = model.float().eval().cpu()
    args, names, dynamic = inputs
    args = tuple(a.cpu() for a in args)
    args = _rows(args, dynamic, EXPORT_ROWS)
    sizes = _batch_sizes(args, dynamic)
    path = folder / ARTIFACTS[fmt]
    label = f"{what} ({fmt})"
    with atomic_path(path) as tmp:
        try:
            with quiet_exporters(), torch.no_grad():
                if fmt == "onnx":
                    _export_onnx(model, args, names, _dims(dynamic), tmp)
                    runner = lambda a: _run_onnx(tmp, names, a)  # noqa: E731
                    runtime = "onnxruntime " + __import__("onnxruntime").__version__
                elif fmt == "exported-program":
                    program = torch.export.export(model, args, dynamic_shapes=_dims(dynamic))
                    torch.export.save(program, str(tmp))
                    loaded = torch.export.load(str(tmp)).module()
                    runner = lambda a: _first(loaded(*a))  # noqa: E731
                    runtime = f"torch.export {torch.__version__}"
                else:
                    traced = torch.jit.trace(model, args, check_trace=False)
                    torch.jit.save(traced, str(tmp))
                    loaded_ts = torch.jit.load(str(tmp))
                    runner = lambda a: _first(loaded_ts(*a))  # noqa: E731
                    runtime = f"torch.jit {torch.__version__}"
                worst = 0.0
                for n in sizes:
                    batch = args if n == 0 else _rows(args, dynamic, n)
                    expected = _first(model(*batch)).float()
                    worst = max(worst, _compare(expected, runner(batch), f"{label} at batch {n}" if n else label, atol, rtol))
        except ExportError:
            raise
        except Exception as exc:  # an exporter's own error: one line, naming the model and the format
            raise ExportError(f"{label}: cannot be exported ({_reason(exc)}).") from None
    log.info("%s: %s written and checked (max |diff| %.3g at batch sizes %s)", label, path.name, worst, sizes)
    return ExportCheck(fmt, path.name, worst, atol, rtol, tuple(sizes), runtime)


@torch.no_grad()
def check_folder(model: nn.Module, folder: Path, inputs: Any, what: str, *, atol: float = ATOL, rtol: float = RTOL) -> ExportCheck:
    """``deepatlas.load(folder)`` gives the original's outputs on ``inputs``."""
    from ..predict import WEIGHTS, load

    args, _, dynamic = inputs
    args = _rows(tuple(a.cpu() for a in args), dynamic, EXPORT_ROWS)
    loaded = load(folder, device="cpu").model
    worst = _compare(_first(model.eval()(*args)).float(), _first(loaded(*args)).float(), f"{what} (folder)", atol, rtol)
    return ExportCheck("folder", WEIGHTS, worst, atol, rtol, _batch_sizes(args, dynamic)[:1], f"deepatlas.load {torch.__version__}")


def real_inputs(predictor: Any, split: str = "test") -> Any:
    """The task's export inputs for the first batch of the run's ``split`` (falling back to val, then train)."""
    from ..data import load_dataset

    run = predictor.run
    if run is None:
        raise ExportError(f"{predictor.source}: export checks need the run's data; export from a run, not from an export folder.")
    data = load_dataset(run.config.data, state_dir=run.path)
    for name in (split, "val", "train"):
        try:
            batch = next(iter(data.eval_batches(name, torch.device("cpu"))), None)
        except Exception:  # a bundle without that split
            batch = None
        if batch is not None:
            return predictor.task.export_inputs(batch)
    raise ExportError(f"{run.id}: its data has no batch to check the export on.")


def export(
    ref: Any, out: str | Path, *, fmt: str = "folder", checkpoint: str = "best", runs_dir: str | Path | None = None,
    atol: float = ATOL, rtol: float = RTOL,
) -> tuple[Path, ExportCheck | None]:
    """Export a run as a folder (``deepatlas.load`` reads it) plus, for ``fmt`` other than ``folder``, the
    network in that format, checked on real inputs; (the folder, the check)."""
    from ..predict import MANIFEST, load

    check_format(fmt)
    if fmt == "onnx":
        require_onnx()
    predictor = load(ref, device="cpu", checkpoint=checkpoint, runs_dir=runs_dir)
    what = f"{predictor.source} ({predictor.config.model.name})"
    if fmt != "folder" and not predictor.task.can("export"):
        raise predictor.task.cannot("export", predictor.source, predictor.config.task.name)
    inputs = real_inputs(predictor) if predictor.task.can("export") else None
    folder = predictor.export(out)
    if inputs is None:
        return folder, None
    if fmt == "folder":
        check = check_folder(predictor.model, folder, inputs, what, atol=atol, rtol=rtol)
    else:
        check = write_artifact(predictor.model, inputs, fmt, folder, what, atol=atol, rtol=rtol)
    import json

    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest.setdefault("artifacts", {})[fmt] = check.to_dict()
    write_json(folder / MANIFEST, manifest)
    return folder, check


__all__ = ["ARTIFACTS", "ATOL", "FORMATS", "RTOL", "ExportCheck", "ExportError", "export", "real_inputs", "write_artifact"]
