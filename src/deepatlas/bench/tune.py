"""Search efficiency: TPE with early pruning against random search without pruning.

For each study seed, random search runs ``trials`` trials to completion and its best validation
value becomes the target. Then TPE with a pruner (ASHA by default) runs one trial at a time until
a *completed* trial reaches the target (a pruned trial's partial value does not count), or until
it has spent as much compute as the random search did. The figure of merit is the compute TPE
spent up to and including the trial that reached the target, as a share of random search's:
training FLOPs (the engine's count: per example x examples seen, so deterministic) and process
CPU-seconds (which include per-trial overheads such as building the model and validating).

A seed where TPE does not reach the target counts with its full spend (share >= 1). Both searches
of a seed use the same seed for their sampler; trials are normal runs in a run store (a temporary
one unless ``runs_dir`` is given), studies in its SQLite file.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYS = ("train_flops", "cpu_s")


@dataclass(frozen=True)
class TuneBench:
    recipe: str = "lenet5-fashion-mnist-search"
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    trials: int = 20  # random-search trials per seed
    sampler: str = "tpe"
    pruner: str = "asha"
    max_trials: int = 60  # at most this many trials of the pruned search per seed


def _spent(trial: dict[str, Any]) -> dict[str, float]:
    c = trial.get("compute") or {}
    return {k: float(c.get(k) or 0.0) for k in KEYS}


def _best_completed(trials: Sequence[dict[str, Any]], maximize: bool) -> float | None:
    values = [t["values"][0] for t in trials if t["state"] == "complete" and t.get("values")]
    if not values:
        return None
    return max(values) if maximize else min(values)


def run_seed(config: TuneBench, seed: int, runs_dir: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """One seed: random search, then the pruned search until it reaches random's best."""
    from ..tune import tune

    base = tune(config.recipe, config.overrides, trials=config.trials, sampler="random", pruner="none",
                study_name=f"bench-random-seed{seed}", runs_dir=runs_dir, seed=seed)
    maximize = base.objectives[0]["direction"] == "maximize"
    target = _best_completed(base.trials, maximize)
    if target is None:
        raise RuntimeError(f"seed {seed}: no random-search trial completed; see the runs in {runs_dir}")
    budget = {k: sum(_spent(t)[k] for t in base.trials) for k in KEYS}
    say(f"seed {seed}: random search best {target:.4f} after {len(base.trials)} trials, "
        f"{budget['train_flops'] / 1e12:.2f} TFLOP, {budget['cpu_s']:.0f} CPU s")

    name = f"bench-{config.sampler}-{config.pruner}-seed{seed}"
    used = dict.fromkeys(KEYS, 0.0)
    reached_at: int | None = None
    trials: list[dict[str, Any]] = []
    best = None
    while len(trials) < config.max_trials and used["train_flops"] < budget["train_flops"]:
        result = tune(config.recipe, config.overrides, trials=1, sampler=config.sampler, pruner=config.pruner,
                      study_name=name, runs_dir=runs_dir, seed=seed)
        trials = result.trials
        last = trials[-1]
        for k, v in _spent(last).items():
            used[k] += v
        best = _best_completed(trials, maximize)
        if best is not None and (best >= target if maximize else best <= target):
            reached_at = last["number"]
            break
    pruned = sum(t["state"] == "pruned" for t in trials)
    row = {
        "seed": seed, "target": target, "random_trials": len(base.trials), "random": budget,
        "reached": reached_at is not None, "best": best, "trials": len(trials), "pruned": pruned, "used": used,
        "share": {k: used[k] / budget[k] if budget[k] else float("nan") for k in KEYS},
    }
    verdict = f"reached {best:.4f} at trial {reached_at}" if reached_at is not None else f"did not reach it (best {best})"
    say(f"seed {seed}: {config.sampler}+{config.pruner} {verdict} after {len(trials)} trials ({pruned} pruned), "
        f"{row['share']['train_flops']:.0%} of the FLOPs, {row['share']['cpu_s']:.0%} of the CPU time")
    return row


def run(config: TuneBench, runs_dir: str | Path | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every seed, and the mean shares: the benchmark's result."""
    with tempfile.TemporaryDirectory(prefix="deepatlas-bench-tune-") as tmp:
        root = Path(runs_dir) if runs_dir is not None else Path(tmp)
        rows = [run_seed(config, seed, root, say) for seed in config.seeds]
    mean = {k: statistics.fmean(r["share"][k] for r in rows) for k in KEYS}
    return {"config": {"recipe": config.recipe, "overrides": list(config.overrides), "trials": config.trials,
                       "sampler": config.sampler, "pruner": config.pruner, "seeds": list(config.seeds)},
            "rows": rows, "mean_share": mean, "reached": sum(r["reached"] for r in rows)}
