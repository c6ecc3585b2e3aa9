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


@app.command()
def coverage(
    recipe: str = typer.Argument(..., help="A quantile-regression recipe with data.calibration_fraction > 0."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides."),
    splits: int = typer.Option(20, "--splits", "-n", help="Random splits (data.split_seed = 0 .. n-1)."),
    level: float = typer.Option(0.9, "--coverage", help="Nominal coverage of the intervals."),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Conformal coverage over random splits next to MAPIE: `deepatlas coverage quantile-engel --splits 20` (needs mapie)."""
    from ..conformal import coverage_study

    setup_logging(True, True)
    result = coverage_study(recipe, seeds=range(splits), overrides=list(overrides or []), runs_dir=runs_dir, coverage=level)
    rows = result["splits"]
    shown = table(["method", "mean coverage", "mean width", "splits inside binomial 95% band", "inside Beta-Binomial band"],
                  title=f"{recipe}: {splits} splits at {level:.0%} (test rows {rows[0]['n_test']}, calibration rows {rows[0]['n_calibration']})")
    for name, prefix in (("deepatlas CQR", ""), ("MAPIE split conformal", "mapie_split_"), ("MAPIE CQR", "mapie_cqr_")):
        mean = result["mean"]
        shown.add_row(name, f"{mean[prefix + 'coverage']:.4f}", f"{mean[prefix + 'width']:.4g}",
                      f"{result['inside'][prefix + 'inside_band']}/{splits}", f"{result['inside'][prefix + 'inside_conformal_band']}/{splits}")
    out.print(shown)
