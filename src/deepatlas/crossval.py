"""k-fold cross-validation of a recipe on a table, with classical baselines on the same folds.

``crossval(recipe, folds=5, baselines=("hgb",))`` trains the recipe once per fold (``data.folds=K
data.fold=k``: fold k is the test split, the validation split is carved from the other rows
with the same seed), evaluates each run's best checkpoint on its test fold, and fits each
named baseline on exactly the same training rows (train + validation: a baseline has no use
for early stopping) and scores it on the same test fold. The result holds the per-fold
metrics and their mean and standard deviation, for the recipe and every baseline, and is
written as ``crossval-<recipe>-<time>.json`` in the run store.

A baseline is a function ``(data, task) -> metrics`` registered with
:func:`deepatlas.baselines.registry.register_baseline`;
``data`` is the fold's :class:`~deepatlas.data.tabular.TabularData` and ``task`` the recipe's task
(for its metric names and options). Baselines come from the libraries statisticians already use
(scikit-learn's gradient boosting, lifelines' Cox model, statsmodels' GLMs), imported only when used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class CrossvalResult:
    recipe: str
    folds: int
    metrics: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # method -> per-fold metrics
    runs: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """method -> metric -> (mean, sample standard deviation over folds)."""
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for method, per_fold in self.metrics.items():
            names = [k for k in per_fold[0] if all(k in m for m in per_fold)] if per_fold else []
            out[method] = {}
            for name in names:
                values = [float(m[name]) for m in per_fold]
                mean = sum(values) / len(values)
                var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
                out[method][name] = (mean, math.sqrt(var))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe, "folds": self.folds, "runs": self.runs, "seconds": self.seconds,
            "metrics": self.metrics,
            "summary": {m: {k: {"mean": v[0], "std": v[1]} for k, v in s.items()} for m, s in self.summary().items()},
        }


def crossval(
    recipe: Any, overrides: Sequence[str] = (), *, folds: int = 5, baselines: Sequence[str] = (),
    runs_dir: str | Path | None = None, progress: bool | None = False, on_fold: Callable[[int, CrossvalResult], None] | None = None,
) -> CrossvalResult:
    """Train ``recipe`` on each of ``folds`` folds and score ``baselines`` on the same folds."""
    from . import api
    from .baselines import get_baseline
    from .build import build_task
    from .config import load_recipe
    from .data import load_dataset
    from .registry import DATASETS

    if folds < 2:
        raise ConfigError(f"--folds: {folds} folds cannot cross-validate (use 2 or more).")
    if isinstance(recipe, (str, Path)):  # the overrides are applied once, here
        config, overrides = load_recipe(recipe, list(overrides)), ()
    else:
        config = recipe
    if DATASETS.get(config.data.name, "data.name").family != "tabular":
        raise ConfigError(f"data.name: {config.data.name} is not a table; cross-validation splits tables (data.folds).")
    chosen = [get_baseline(name) for name in baselines]
    name = Path(config.recipe).stem if config.recipe else f"{config.model.name}-{config.data.name}"
    result = CrossvalResult(name, folds)
    for fold in range(folds):
        fold_overrides = [*overrides, f"data.folds={folds}", f"data.fold={fold}", "train.test=true"]
        fold_config = config.override(fold_overrides)
        start = time.perf_counter()
        run = api.train(fold_config, runs_dir=runs_dir, progress=progress)
        result.seconds["recipe"] = result.seconds.get("recipe", 0.0) + time.perf_counter() - start
        result.runs.append(run.id)
        result.metrics.setdefault("recipe", []).append(dict((run.summary.get("eval") or {}).get("test") or {}))
        if chosen:
            data = load_dataset(fold_config.data)
            task = build_task(fold_config, data.meta)
            for baseline in chosen:
                if data.meta.get("target_type") and _kind(data.meta["target_type"]) not in baseline.kinds:
                    raise ConfigError(f"--baseline: {baseline.name} serves {', '.join(baseline.kinds)} data, not this {_kind(data.meta['target_type'])} table.")
                start = time.perf_counter()
                scores = baseline.fit_and_score(data, task)
                result.seconds[baseline.name] = result.seconds.get(baseline.name, 0.0) + time.perf_counter() - start
                result.metrics.setdefault(baseline.name, []).append(scores)
        if on_fold is not None:
            on_fold(fold, result)
    return result


def _kind(target_type: str) -> str:
    from .data.tabular import TARGET_KINDS

    return TARGET_KINDS.get(target_type, target_type)


def write_result(result: CrossvalResult, runs_dir: str | Path | None = None) -> Path:
    """``crossval-<recipe>-<time>.json`` in the run store's folder."""
    from .io import write_json
    from .tracking import RunStore

    root = RunStore(runs_dir).ensure_root()
    path = Path(root) / f"crossval-{result.recipe}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, result.to_json())
    return path


def format_table(summary: Mapping[str, Mapping[str, tuple[float, float]]]) -> list[list[str]]:
    """Rows [method, metric, mean +- std] for printing."""
    rows = []
    for method, metrics in summary.items():
        for metric, (mean, std) in metrics.items():
            rows.append([method, metric, f"{mean:.4f} +- {std:.4f}"])
    return rows
