"""``deepatlas crossval``: k-fold cross-validation of a recipe on a table, next to classical baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import RUNS_DIR, setup_logging
from .format import out, table

app = typer.Typer()


@app.command()
def crossval(
    recipe: str = typer.Argument(..., help="Recipe name or YAML path of a tabular recipe."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides: train.epochs=50 model.width=128"),
    folds: int = typer.Option(5, "--folds", "-k", help="Number of folds (each is the test split once)."),
    baseline: Optional[list[str]] = typer.Option(
        None, "--baseline", "-b", help="Baselines fitted on the same folds: hgb, coxph, glm (repeatable)."
    ),
    runs_dir: Optional[Path] = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Cross-validate a recipe: `deepatlas crossval deepsurv-gbsg2 --folds 5 --baseline coxph`."""
    from ..baselines import get_baseline
    from ..config import load_recipe
    from ..crossval import crossval as run_crossval
    from ..crossval import format_table, write_result

    setup_logging(quiet, True)
    config = load_recipe(recipe, list(overrides or []))  # a mistake fails before any training
    for name in baseline or []:
        get_baseline(name)

    def report(fold: int, result) -> None:
        if not quiet:
            scores = result.metrics["recipe"][-1]
            shown = "  ".join(f"{k} {v:.4f}" for k, v in list(scores.items())[:4])
            out.print(f"fold {fold + 1}/{folds}: run {result.runs[-1]}  {shown}", soft_wrap=True)

    result = run_crossval(config, folds=folds, baselines=list(baseline or []), runs_dir=runs_dir, progress=False, on_fold=report)
    path = write_result(result, runs_dir)
    shown = table(["method", "metric", f"mean +- std over {folds} folds"], title=f"crossval {result.recipe}")
    for row in format_table(result.summary()):
        shown.add_row(*row)
    out.print(shown)
    seconds = "  ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    out.print(f"time: {seconds}")
    out.print(f"saved to {path}")
