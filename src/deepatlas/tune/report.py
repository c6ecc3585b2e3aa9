"""Studies after the fact: list them, and report one (best trials, importances, plots, compute).

Plots are written atomically as PNGs into ``<runs_dir>/studies/<name>/``: Optuna's optimisation
history of each objective and Pareto front of a study with two or three objectives, and our parallel
coordinates of each objective (:func:`deepatlas.report.plots.parallel_figure`). Parameter importances are Optuna's default evaluator (PED-ANOVA in
Optuna 4 and later) over the completed trials.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError, one_of, suggest
from ..io import atomic_path, write_json
from .study import redact, storage_url, summarize

log = logging.getLogger(__name__)


def _root(runs_dir: str | Path | None) -> Path:
    from ..tracking import RunStore

    return RunStore(runs_dir).root


def _no_storage(storage: str | None, root: Path) -> bool:
    """No storage named and no default SQLite file yet (reading must not create one)."""
    return not (storage or os.environ.get("DEEPATLAS_STUDY_STORAGE")) and not (root / "studies.db").is_file()


def list_studies(storage: str | None = None, runs_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per study in the storage: name, objectives, trial counts by state, best value(s)."""
    import optuna

    root = _root(runs_dir)
    if _no_storage(storage, root):
        return []
    url = storage_url(storage, root)
    rows = []
    for summary in optuna.get_all_study_summaries(url, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        result = summarize(study, url, root)
        counts = {state: sum(1 for t in result.trials if t["state"] == state) for state in ("complete", "pruned", "fail", "running")}
        setup = (study.user_attrs.get("deepatlas") or {}).get("config") or {}
        start = summary.datetime_start
        rows.append({
            "name": summary.study_name, "recipe": setup.get("recipe"),
            "objectives": result.objectives, "trials": len(result.trials), **counts,
            "best": [t["values"] for t in result.best], "started": start.isoformat(timespec="seconds") if start else None,
        })
    return rows


def open_study(name: str, storage: str | None = None, runs_dir: str | Path | None = None) -> tuple[Any, str, Path]:
    """``(study, storage URL, runs dir)`` of an existing study; a clear error when it does not exist."""
    import optuna

    root = _root(runs_dir)
    if _no_storage(storage, root):
        raise ConfigError(f"study {name!r}: no studies in {root} yet (see --runs-dir, --storage, or run `deepatlas tune`).")
    url = storage_url(storage, root)
    names = optuna.get_all_study_names(url)
    if name not in names:
        raise ConfigError(
            f"study {name!r}: not found in {redact(url)} (studies: {one_of(names) or 'none'})." + suggest(name, names)
        )
    return optuna.load_study(study_name=name, storage=url), url, root


def study_report(
    name: str, storage: str | None = None, runs_dir: str | Path | None = None, *, top: int = 5, plots: bool = True
) -> dict[str, Any]:
    """Best trials, parameter importances, plots and compute (with pruning's savings) of a study;
    also written to ``<runs_dir>/studies/<name>/report.json``."""
    study, url, root = open_study(name, storage, runs_dir)
    result = summarize(study, url, root)
    folder = Path(result.folder)
    complete = [t for t in result.trials if t["state"] == "complete"]
    if len(result.objectives) == 1 and complete:
        sign = -1.0 if result.objectives[0]["direction"] == "maximize" else 1.0
        best = sorted(complete, key=lambda t: sign * t["values"][0])[:top]
    else:
        best = result.best
    report = {
        **result.to_dict(),
        "best": best,
        "importances": importances(study, result.objectives) if len(complete) >= 2 else {},
        "figures": [str(p) for p in write_plots(study, result.objectives, folder)] if plots and complete else [],
        "warnings": data_warnings(result.trials),
    }
    write_json(folder / "report.json", report)
    return report


def importances(study: Any, objectives: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """``{objective: {param: importance}}`` over completed trials; empty for an objective it cannot rank."""
    import optuna

    out: dict[str, dict[str, float]] = {}
    for i, objective in enumerate(objectives):
        target = None if len(objectives) == 1 else (lambda t, i=i: t.values[i])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[objective["name"]] = dict(optuna.importance.get_param_importances(study, target=target))
        except (ValueError, RuntimeError) as exc:  # e.g. every completed trial has the same parameters
            log.info("no importances for %s: %s", objective["name"], exc)
            out[objective["name"]] = {}
    return out


def write_plots(study: Any, objectives: list[dict[str, str]], folder: Path) -> list[Path]:
    """History and parallel coordinates per objective, and the Pareto front; PNGs in ``folder``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from optuna.visualization import matplotlib as vis

    with matplotlib.rc_context():  # Optuna's plots switch to the ggplot style: keep that to these figures
        return _draw(study, objectives, folder, vis)


def _draw(study: Any, objectives: list[dict[str, str]], folder: Path, vis: Any) -> list[Path]:
    jobs: list[tuple[str, Any]] = []
    multi = len(objectives) > 1
    for i, objective in enumerate(objectives):
        suffix = f"-{_slug(objective['name'])}" if multi else ""
        kwargs = {"target": (lambda t, i=i: t.values[i]), "target_name": objective["name"]} if multi else {
            "target_name": objective["name"]}
        jobs.append((f"history{suffix}.png", lambda kw=kwargs: vis.plot_optimization_history(study, **kw)))
        jobs.append((f"parallel{suffix}.png", lambda i=i, o=objective: parallel_plot(study, i, o)))
    if multi and len(objectives) <= 3:
        names = [o["name"] for o in objectives]
        jobs.append(("pareto.png", lambda: vis.plot_pareto_front(study, target_names=names)))
    written = []
    for filename, draw in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                written.append(_save(draw(), folder / filename))
        except Exception as exc:  # a figure is a nicety: a study with odd trials still reports
            log.warning("could not draw %s: %s", filename, exc)
    return written


def parallel_plot(study: Any, index: int, objective: dict[str, str]) -> Any:
    """The parallel-coordinates figure of the completed trials for objective ``index`` (ours, not
    Optuna's: its tick labels of neighbouring axes overlap, and its colour map fades the worst trial
    to white)."""
    import math

    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from ..report.plots import ParallelAxis, parallel_figure

    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.values is not None and math.isfinite(t.values[index])]
    if not trials:
        raise ValueError("no completed trial with a finite objective")
    names: dict[str, Any] = {}
    for t in trials:  # parameters in the order the trials sampled them
        for name, distribution in t.distributions.items():
            names.setdefault(name, distribution)
    axes = [
        ParallelAxis(name, [t.params.get(name) for t in trials], log=bool(getattr(d, "log", False)),
                     choices=d.choices if isinstance(d, CategoricalDistribution) else None)
        for name, d in names.items()
    ]
    return parallel_figure(axes, [t.values[index] for t in trials], objective["name"],
                           higher_is_better=objective["direction"] == "maximize",
                           title=f"{study.study_name}: {len(trials)} completed trial{'s' if len(trials) != 1 else ''}")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def _save(axes: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    fig = axes if hasattr(axes, "savefig") else np.ravel(axes)[0].figure  # a Figure, or Optuna's Axes
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def data_warnings(trials: list[dict[str, Any]]) -> list[str]:
    """Warnings when the study's trials validated (or trained) on different data: fingerprints differ."""
    out = []
    for split, consequence in (("val", "their objective values are not comparable"),
                               ("train", "expected only when data keys are searched")):
        groups: dict[str, list[int]] = {}
        for t in trials:
            fingerprint = (t.get("data_fingerprints") or {}).get(split)
            if fingerprint:
                groups.setdefault(fingerprint, []).append(t["number"])
        if len(groups) > 1:
            shown = "; ".join(f"{fp[:12]}: trials {', '.join(map(str, numbers[:5]))}" for fp, numbers in groups.items())
            out.append(f"the trials saw {len(groups)} different {split} data sets ({shown}): {consequence}")
    return out
