"""``deepatlas tune``, ``deepatlas studies`` and ``deepatlas bench tune``: hyperparameter search with Optuna.

Sampled values print to 4 significant digits (``optim.lr=0.001252``); the
studies and the runs keep them exact (``--json`` shows them unrounded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import RUNS_DIR, STORAGE, setup_logging
from .format import assignments, energy, err, number, out, seconds, table, values

app = typer.Typer()
studies_app = typer.Typer(help="List studies; show one (best trials, importances, plots).", invoke_without_command=True)


def _trials_table(trials: list[dict[str, Any]], objectives: list[dict[str, str]], title: str) -> Table:
    names = ", ".join(f"{o['name']} ({o['direction'][:3]})" for o in objectives)
    shown = table(("trial", "state", names, "params", "run"), right=("trial", names), title=title)
    colours = {"complete": "green", "pruned": "yellow", "fail": "red"}
    for t in trials:
        colour = colours.get(t["state"], "white")
        note = assignments(t["params"]) + (f"  [red]{t['error'][:80]}[/red]" if t.get("error") else "")
        shown.add_row(str(t["number"]), f"[{colour}]{t['state']}[/{colour}]", values(t["values"]), note, t["run_id"] or "-")
    return shown


@app.command("tune")
def tune_cmd(
    recipe: str = typer.Argument(..., help="Recipe with a `search:` section (name, YAML path or run folder)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides for every trial: train.epochs=5"),
    trials: int = typer.Option(..., "--trials", "-n", min=1, help="Trials to run now (added to a resumed study)."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random, grid, cmaes or nsga2."),
    pruner: str = typer.Option("none", "--pruner", help="none, median, asha or hyperband (steps are epochs)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0, help="Start no new trial after this many seconds."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the recipe's); an existing one resumes."),
    storage: Optional[str] = STORAGE,
    runs_dir: Optional[Path] = RUNS_DIR,
    seed: int = typer.Option(0, "--seed", help="Sampler seed (give each worker of a shared study its own)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final table."),
    as_json: bool = typer.Option(False, "--json", help="Print the study summary as JSON."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train each trial on N local processes (torchrun, DDP)."),
) -> None:
    """Search a recipe's `search:` space with Optuna; every trial is a normal run in the run store."""
    import os

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from .train import launch

        args = [recipe, *(overrides or []), "--trials", str(trials), "--sampler", sampler, "--pruner", pruner,
                *(["--timeout", str(timeout)] if timeout is not None else []), *(["--study", study] if study else []),
                *(["--storage", storage] if storage else []), *(["--runs-dir", str(runs_dir)] if runs_dir else []),
                "--seed", str(seed), *(["--quiet"] if quiet else []), *(["--json"] if as_json else [])]
        raise typer.Exit(launch(nproc, args, command="tune"))
    import optuna

    from ..tune import tune

    setup_logging(quiet or as_json, True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # deepatlas logs one line per trial itself
    result = tune(
        recipe, list(overrides or []), trials=trials, sampler=sampler, pruner=pruner, timeout=timeout,
        study_name=study, storage=storage, runs_dir=runs_dir, seed=seed, progress=False,
    )
    if result is None:  # a rank after 0 of a distributed search: rank 0 reports
        return
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        out.print(_trials_table(result.trials, result.objectives, f"study {result.name} ({result.storage})"))
        _print_best(result.best, result.objectives)
        out.print(f"show it with: deepatlas studies show {result.name}" + (f" --storage {storage}" if storage else ""))
    if result.interrupted:
        raise typer.Exit(130)
    if not any(t["state"] in ("complete", "pruned") for t in result.trials):
        raise typer.Exit(1)


def _print_best(best: list[dict[str, Any]], objectives: list[dict[str, str]]) -> None:
    if not best:
        out.print("no completed trial yet")
        return
    label = "best trial" if len(objectives) == 1 else f"Pareto front ({len(best)} trials)"
    out.print(f"[bold]{label}[/bold]:")
    for t in best:
        shown = "  ".join(f"{o['name']} {values([v])}" for o, v in zip(objectives, t["values"], strict=True))
        out.print(f"  #{t['number']}  {shown}  {assignments(t['params'])}  run {t['run_id']}")


@studies_app.callback()
def studies_list(
    ctx: typer.Context,
    storage: Optional[str] = STORAGE,
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """List the studies in the storage (`deepatlas studies show NAME` for one)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"storage": storage, "runs_dir": runs_dir}
        return
    from ..tune import list_studies

    rows = list_studies(storage, runs_dir)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no studies yet: add a `search:` section to a recipe and run `deepatlas tune RECIPE --trials N`")
        return
    counts = ("trials", "complete", "pruned", "fail", "running")
    listed = table(("study", "recipe", "objectives", *counts, "best", "started"), right=counts)
    for r in rows:
        objectives = ", ".join(f"{o['name']} ({o['direction'][:3]})" for o in r["objectives"])
        best = values(r["best"][0]) if len(r["best"]) == 1 else (f"{len(r['best'])} on the Pareto front" if r["best"] else "-")
        listed.add_row(r["name"], r["recipe"] or "-", objectives, *(str(r[c]) for c in counts), best, (r["started"] or "")[:19])
    out.print(listed)


@studies_app.command("show")
def studies_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Study name (see `deepatlas studies`)."),
    storage: Optional[str] = STORAGE,
    runs_dir: Optional[Path] = RUNS_DIR,
    top: int = typer.Option(5, "--top", min=1, help="Best trials shown (single objective)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """The best trials, parameter importances, plots and compute of a study (and what pruning saved)."""
    from ..tune import study_report

    parent = ctx.obj or {}
    report = study_report(name, storage or parent.get("storage"), runs_dir or parent.get("runs_dir"), top=top)
    if as_json:
        out.print_json(json.dumps(report))
        return
    objectives = report["objectives"]
    states = {s: sum(1 for t in report["trials"] if t["state"] == s) for s in ("complete", "pruned", "fail", "running")}
    out.print(f"[bold]study {report['name']}[/bold] ({report['storage']}): {len(report['trials'])} trials, "
              + ", ".join(f"{n} {s}" for s, n in states.items() if n))
    title = f"best trials ({len(report['best'])})" if len(objectives) == 1 else "Pareto front"
    out.print(_trials_table(report["best"], objectives, title))
    for objective, ranks in report["importances"].items():
        if ranks:
            out.print(f"importance for {objective}: " + "  ".join(f"{k} {v:.2f}" for k, v in ranks.items()))
    out.print(_compute_line(report["compute"]))
    for figure in report["figures"]:
        out.print(f"figure: {figure}")
    for warning in report["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)


def _compute_line(compute: dict[str, Any]) -> str:
    total, saved, share = compute["total"], compute["saved"], compute["saved_share"]
    line = (
        f"compute: {number(total['train_flops'])} train FLOPs, {seconds(total['cpu_s'])} CPU, {seconds(total['wall_s'])} wall, "
        f"{energy(total['energy_j'], total['co2e_g'])}"
    )
    if not compute["pruned_trials"]:
        return line + "; no trial was pruned"
    return line + (
        f"; pruning {compute['pruned_trials']} trials saved about {number(saved['train_flops'])} FLOPs, "
        f"{seconds(saved['cpu_s'])} CPU, {energy(saved['energy_j'], saved['co2e_g'])} "
        f"({share['cpu_s']:.0%} of the study's CPU time without pruning)"
    )


def bench_tune(
    recipe: str = typer.Option("lenet5-fashion-mnist-search", "--recipe", help="Recipe with a `search:` section."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides for every trial: train.epochs=4"),
    seeds: list[int] = typer.Option([0, 1, 2], "--seed", help="Study seeds (repeat the option)."),
    trials: int = typer.Option(20, "--trials", min=1, help="Random-search trials per seed (run to completion)."),
    sampler: str = typer.Option("tpe", "--sampler", help="The sampler of the pruned search."),
    pruner: str = typer.Option("asha", "--pruner", help="asha, hyperband or median."),
    max_trials: int = typer.Option(60, "--max-trials", min=1, help="At most this many pruned-search trials per seed."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Keep the trials' runs here (default: a temporary folder)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Compute a pruned TPE search needs to reach the best validation value of random search without pruning."""
    from ..bench.tune import TuneBench, run

    config = TuneBench(recipe=recipe, overrides=tuple(overrides or ()), seeds=tuple(seeds), trials=trials,
                       sampler=sampler, pruner=pruner, max_trials=max_trials)
    result = run(config, runs_dir, say=lambda line: err.print(line))
    if as_json:
        out.print_json(json.dumps(result))
        return
    columns = ("seed", "random best", "random TFLOP", "random CPU", "reached", "trials (pruned)", "FLOP share", "CPU share")
    rows = table(columns, right=columns, title=f"{sampler} + {pruner} vs random search without pruning ({trials} trials), {recipe}")
    for r in result["rows"]:
        rows.add_row(
            str(r["seed"]), number(r["target"]), f"{r['random']['train_flops'] / 1e12:.2f}", seconds(r["random"]["cpu_s"]),
            f"yes ({number(r['best'])})" if r["reached"] else f"no ({number(r['best'])})", f"{r['trials']} ({r['pruned']})",
            f"{r['share']['train_flops']:.0%}", f"{r['share']['cpu_s']:.0%}",
        )
    mean = result["mean_share"]
    rows.add_row("mean", "", "", "", f"{result['reached']}/{len(result['rows'])}", "",
                 f"{mean['train_flops']:.0%}", f"{mean['cpu_s']:.0%}")
    out.print(rows)
    out.print("share: compute until a completed trial reached random search's best, over random search's compute "
              "(goal <= 33%).")
