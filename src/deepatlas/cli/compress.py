"""``deepatlas compress`` (prune, fine-tune) and ``deepatlas quantize`` (int8): each writes a new run linked to its parent."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import RUNS_DIR
from .format import number, out, table

app = typer.Typer()


def _show(runs: list[Any]) -> None:
    """One row per derived run: what was done, its footprint, its test metric and the change from its parent's,
    and its CPU latency at batch 64 against its parent's (measured side by side when the run was made)."""
    right = ("params", "sparsity", "size MB", "val", "test", "change", "ms/64 (parent)")
    rows = table(("run", "derived by", *right), right=right)
    from ..tracking.compare import derivation

    for run in runs:
        s = run.summary
        c, test = s.get("compression") or {}, (s.get("eval") or {}).get("test") or {}
        monitor = ((s.get("best") or {}).get("metric") or "val/accuracy").split("/", 1)[-1]
        parent_test = _parent_test(run, monitor)
        change = test.get(monitor) - parent_test if isinstance(test.get(monitor), float) and parent_test is not None else None
        ms, parent_ms = (c.get("latency_ms") or {}).get("64"), (c.get("parent_latency_ms") or {}).get("64")
        rows.add_row(
            run.id, derivation(s.get("lineage")) or "-", number((s.get("params") or {}).get("total")), number(c.get("sparsity")),
            number((c.get("size_bytes") or 0) / 1e6), number((s.get("best") or {}).get("value")), number(test.get(monitor)),
            f"{change:+.4f}" if change is not None else "-", f"{ms:.1f} ({parent_ms:.1f})" if ms and parent_ms else "-",
        )
    out.print(rows)
    out.print(f"compare the chain: deepatlas runs compare {runs[-1].id} --lineage", markup=False)


def _parent_test(run: Any, monitor: str) -> float | None:
    """The test value of ``monitor`` of the run ``run`` derives from, if it is in the same store."""
    from ..tracking import RunStore

    parent = (run.summary.get("lineage") or {}).get("parent")
    try:
        value = ((RunStore(run.path.parent).open(parent).summary.get("eval") or {}).get("test") or {}).get(monitor)
    except Exception:  # the parent was deleted or lives elsewhere: no change shown
        return None
    return float(value) if isinstance(value, (int, float)) else None


@app.command()
def compress(
    run: str = typer.Argument(..., help="Run id, prefix or folder of a trained run."),
    amount: float = typer.Option(..., "--prune", help="Fraction to remove, e.g. 0.5 (weights; with --method channels: inner channels)."),
    method: str = typer.Option("global", "--method", help="global or layer (unstructured magnitude), channels (ResNets: removes channels)."),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", help="Fine-tune epochs after each round (0: none).", min=0),
    rounds: int = typer.Option(1, "--rounds", help="Iterative pruning: rounds to reach --prune, fine-tuned after each.", min=1),
    lr: Optional[float] = typer.Option(None, "--lr", help="Fine-tuning learning rate (default: a tenth of the run's)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for fine-tuning (train.threads).", min=1),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Prune a trained run (and fine-tune it): `deepatlas compress RUN --prune 0.5 --finetune-epochs 2`."""
    from ..compress.pipeline import prune_run
    from .common import setup_logging

    setup_logging(False, True)
    overrides = {"threads": threads} if threads else None
    _show(prune_run(run, amount, method=method, finetune_epochs=finetune_epochs, rounds=rounds, lr=lr, runs_dir=runs_dir,
                    progress=None, overrides=overrides))


@app.command()
def quantize(
    run: str = typer.Argument(..., help="Run id, prefix or folder of a trained run."),
    mode: str = typer.Option("static", "--mode", help="dynamic (Linear/LSTM/GRU), static (calibrated, CNNs) or qat."),
    calibration_batches: int = typer.Option(8, "--calibration-batches", help="Training batches that calibrate static int8.", min=1),
    qat_epochs: int = typer.Option(1, "--qat-epochs", help="Epochs of quantization-aware fine-tuning (--mode qat).", min=1),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """An int8 version of a trained run (x86 CPU backend): `deepatlas quantize RUN --mode static`."""
    from ..compress.pipeline import quantize_run
    from ..compress.quantize import check_mode

    _show([quantize_run(run, check_mode(mode), calibration_batches=calibration_batches, qat_epochs=qat_epochs, runs_dir=runs_dir)])
