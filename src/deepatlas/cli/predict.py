"""``deepatlas predict``, ``deepatlas export`` and ``deepatlas ensemble``: a trained model on raw inputs, a folder
to ship it in, and a deep ensemble of classifier runs evaluated on a split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .common import RUNS_DIR
from .format import out

app = typer.Typer()


@app.command()
def predict(
    run: str = typer.Argument(..., help="Run id, prefix or folder, or an export folder."),
    inputs: list[str] = typer.Argument(..., help="Image files (PNG/JPEG), strings for text runs, CSV/Parquet files for table runs."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (default: the run's)."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
) -> None:
    """Predict raw inputs with a trained run: `deepatlas predict RUN shoe.png`, `deepatlas predict RUN "some text"`."""
    from ..predict import load

    predictor = load(run, device=device, checkpoint=checkpoint, runs_dir=runs_dir)
    kind = predictor.preprocessor.kind
    if kind == "tabular":  # table files: one prediction per row
        raw, inputs = _table_rows(inputs)
    else:
        raw = [Path(i) for i in inputs] if kind == "images" else inputs
    predictions = predictor.predict(raw)
    if predictor.task.predicts == "label-maps":  # a class per pixel: print each class's share of the image
        _print_label_maps(inputs, predictions, predictor.class_names, as_json)
        return
    rows = [{"input": i, "prediction": _shown(p)} for i, p in zip(inputs, predictions, strict=True)]
    outputs = predictor.outputs(raw)
    if "probabilities" in outputs:
        confidence = predictor.predict_proba(raw).max(axis=-1)
        for row, c in zip(rows, confidence, strict=True):
            row["confidence"] = round(float(c if c.ndim == 0 else c[-1]), 4)
    if "lower" in outputs and "upper" in outputs:  # an interval per row (distributional, quantile tasks)
        for row, lo, hi in zip(rows, outputs["lower"].tolist(), outputs["upper"].tolist(), strict=True):
            row["interval"] = [round(lo, 6), round(hi, 6)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for row in rows:
        extra = f" ({row['confidence']:.3f})" if "confidence" in row else ""
        extra += f" [{row['interval'][0]:.4g}, {row['interval'][1]:.4g}]" if "interval" in row else ""
        out.print(f"{row['input']}: {row['prediction']}{extra}", soft_wrap=True, markup=False)


def _print_label_maps(inputs: list[str], maps: object, names: list[str] | None, as_json: bool) -> None:
    """Per input: its label map's size and the share of its pixels in each class (with --json, also the map)."""
    import numpy as np

    rows = []
    for source, labels in zip(inputs, [np.asarray(m) for m in maps], strict=True):  # sizes may differ
        counts = np.bincount(labels.reshape(-1), minlength=len(names or []))
        shares = {(names[k] if names and k < len(names) else str(k)): round(float(c) / labels.size, 4) for k, c in enumerate(counts)}
        rows.append({"input": source, "size": list(labels.shape), "class_shares": shares, "label_map": labels.tolist()})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for row in rows:
        shares = ", ".join(f"{name} {share:.1%}" for name, share in row["class_shares"].items() if share > 0)
        out.print(f"{row['input']}: {row['size'][0]}x{row['size'][1]} label map: {shares}", soft_wrap=True, markup=False)


@app.command()
def ensemble(
    runs: list[str] = typer.Argument(..., help="Two or more classifier runs (ids, prefixes or folders)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate on: test, val or train."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (default: each run's)."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """A deep ensemble (Lakshminarayanan et al. 2017): the members' and the averaged prediction's accuracy, NLL and ECE."""
    from ..ensemble import ensemble as build_ensemble
    from .format import number, table

    result = build_ensemble(runs, device=device, checkpoint=checkpoint, runs_dir=runs_dir).evaluate(split)
    if as_json:
        out.print_json(json.dumps({"split": result.split, "members": result.members, "member_mean": result.member_mean,
                                   "ensemble": result.ensemble}))
        return
    shown = table(("model", "accuracy", "nll", "ece"), right=("accuracy", "nll", "ece"), title=f"deep ensemble ({split})")
    rows = [*result.members.items(), ("member mean", result.member_mean), (f"ensemble of {len(result.members)}", result.ensemble)]
    for name, metrics in rows:
        shown.add_row(name, *(number(metrics[k]) for k in ("accuracy", "nll", "ece")))
    out.print(shown)


def _table_rows(files: list[str]) -> tuple[object, list[str]]:
    """The rows of CSV/Parquet files as one DataFrame, and a name per row (``file:row``)."""
    import pandas as pd

    from ..data.tabular import read_table

    frames = [read_table(Path(f)) for f in files]
    names = [f"{f}:{i + 1}" for f, frame in zip(files, frames, strict=True) for i in range(len(frame))]
    return pd.concat(frames, ignore_index=True), names


def _shown(prediction: object) -> str:
    """A prediction as printed: numbers to 6 significant digits, labels as they are."""
    try:
        return f"{float(prediction):.6g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(prediction)


@app.command()
def export(
    run: str = typer.Argument(..., help="Run id, prefix or folder."),
    folder: Path = typer.Option(..., "--out", "-o", help="Folder to write (created; must be new, empty or an export)."),
    fmt: str = typer.Option("folder", "--format", "-f", help="folder, onnx, exported-program or torchscript (inside the folder)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    atol: float = typer.Option(1e-4, "--atol", help="Absolute tolerance of the check against the original.", min=0.0),
    rtol: float = typer.Option(1e-3, "--rtol", help="Relative tolerance of the check against the original.", min=0.0),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Write a self-contained folder (config, weights, preprocessing, tokenizer) that `deepatlas.load` reads,
    with the network as ONNX, a torch.export program or TorchScript (`--format onnx`), checked on the run's data."""
    from ..compress.export import check_format
    from ..compress.export import export as export_run

    path, check = export_run(run, folder, fmt=check_format(fmt), checkpoint=checkpoint, runs_dir=runs_dir, atol=atol, rtol=rtol)
    out.print(f"exported {run} to {path} (load it with deepatlas.load({str(path)!r}))", markup=False)
    if check is not None:
        sizes = ", ".join(str(n) for n in check.batch_sizes if n) or "the whole graph"
        out.print(
            f"checked {path / check.file} with {check.runtime}: max |diff| {check.max_abs_error:.3g} "
            f"(tolerance {check.atol:g} + {check.rtol:g}|y|) at batch sizes {sizes}", markup=False,
        )
