"""``deepatlas runs``: list, show, summarise, compare and reindex the runs of a run store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from .common import RUNS_DIR
from .format import duration, energy_text, err, git_text, number, out, pairs, table

app = typer.Typer(help="List, show and compare runs.", invoke_without_command=True, no_args_is_help=False)


@app.callback()
def runs_list(
    ctx: typer.Context,
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Only runs of this recipe."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
    limit: int = typer.Option(30, "--limit", help="At most this many rows."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """List runs, newest first (`deepatlas runs show RUN`, `deepatlas runs compare A B`)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"runs_dir": runs_dir}
        return
    from .. import api

    rows = api.list_runs(runs_dir, recipe=recipe, status=status, limit=limit)
    if as_json:
        out.print_json(json.dumps([{k: v for k, v in r.items() if k != "summary"} for r in rows]))
        return
    if not rows:
        out.print("no runs yet: try `deepatlas train quickstart`")
        return
    listed = table(
        ("run", "status", "model", "dataset", "monitor", "best", "test", "params", "time", "created"),
        right=("best", "test", "params", "time"),
    )
    for r in rows:
        listed.add_row(
            r["id"], r["status"], r["model"], r["dataset"], r["monitor"] or "-", number(r["best"]), number(r["test"]),
            number(r["params"]), duration(r["wall_s"]), (r["created"] or "")[:19],
        )
    out.print(listed)


@app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="Run id, prefix or folder."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print summary.json."),
) -> None:
    """Everything about one run: status, metrics, compute, data, environment, figures, files."""
    from .. import api

    r = api.open_run(run, runs_dir)
    s = r.summary
    if as_json:
        out.print_json(json.dumps(s))
        return
    out.print(f"[bold]{r.id}[/bold]  {s.get('status')}  {s.get('reason', '')}")
    out.print(pairs(_show_rows(s, r.path)))


def _show_rows(s: dict[str, Any], folder: Path) -> list[tuple[str, Any]]:
    best = s.get("best") or {}
    p, flops, t = s.get("params") or {}, s.get("flops") or {}, s.get("time") or {}
    prog = s.get("progress") or {}
    rows: list[tuple[str, Any]] = [
        ("recipe", s.get("recipe")), ("model", s.get("model")), ("dataset", s.get("dataset")), ("task", s.get("task")),
        ("parameters", number(p.get("total"))),
        ("FLOPs/sample", f"forward {number(flops.get('forward_per_sample'))}, train {number(flops.get('train_per_sample'))}"),
        ("progress", f"epoch {prog.get('epoch')}/{prog.get('epochs')}, step {prog.get('step')}/{prog.get('total_steps')}"),
        ("time", f"{duration(t.get('wall_s'))} wall, {duration(t.get('cpu_s'))} CPU, {number(t.get('samples_per_s'), 0)} samples/s"),
        ("peak memory", f"{number(s.get('peak_memory_mb'), 0)} MB"),
        ("energy", energy_text(s.get("energy"))),
        ("best", f"{best.get('metric')} {number(best.get('value'))} (epoch {best.get('epoch')})"),
    ]
    rows += [(f"last {k}", number(v)) for k, v in (s.get("final") or {}).items()]
    for split, metrics in (s.get("eval") or {}).items():
        rows += [(f"{split} {k}", number(v)) for k, v in metrics.items()]
    for split, fp in ((s.get("data") or {}).get("fingerprints") or {}).items():
        rows.append((f"data {split}", fp[:16]))
    env = s.get("environment") or {}
    rows += [("device", f"{env.get('device')} ({env.get('device_name')})"),
             ("versions", f"deepatlas {env.get('deepatlas')}, torch {env.get('torch')}, python {env.get('python')}"),
             ("git", git_text(env.get("git")))]
    rows += [("figure", path) for path in sorted(folder.rglob("*.png"))]
    rows.append(("folder", str(folder)))
    return rows


@app.command("summary")
def runs_summary(
    ctx: typer.Context,
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Only runs of this recipe."),
    split: str = typer.Option("test", "--split", help="Which evaluation to aggregate."),
    as_json: bool = typer.Option(False, "--json", help="Print the groups as JSON."),
) -> None:
    """Mean +- std of the completed runs' metrics per recipe, model and dataset (several seeds or folds)."""
    from .. import api
    from ..tracking.compare import aggregate

    runs_dir = (ctx.obj or {}).get("runs_dir")
    groups = aggregate(api.list_runs(runs_dir, recipe=recipe), split)
    if as_json:
        out.print_json(json.dumps(groups))
        return
    if not groups:
        out.print("no completed runs to summarise")
        return
    metrics_col = f"{split} metrics (mean +- std)"
    summary = table(("recipe", "model", "dataset", "runs", metrics_col, "mean time"), right=("runs", "mean time"))
    for g in groups:
        shown = "  ".join(f"{k} {m['mean']:.4f} +- {m['std']:.4f}" for k, m in g["metrics"].items())
        summary.add_row(g["recipe"], g["model"], g["dataset"], str(g["runs"]), shown, duration(g["mean_wall_s"]))
    out.print(summary)


@app.command("compare")
def runs_compare(
    runs: list[str] = typer.Argument(..., help="Two or more run ids, prefixes or folders (one with --lineage)."),
    runs_dir: Optional[Path] = RUNS_DIR,
    lineage: bool = typer.Option(False, "--lineage", help="Precede each run by the runs it derives from (compression chains)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Side by side: the config keys that differ, then metrics; warns if the data or the environment differed."""
    from .. import api

    result = api.compare_runs(runs, runs_dir, lineage=lineage)
    if as_json:
        out.print_json(json.dumps(result))
        return
    for title, rows in (("config (differences only)", result["config"]), ("metrics", result["metrics"])):
        compared = table(("key", *result["runs"]), right=result["runs"], title=title)
        for key, values in rows.items():
            compared.add_row(key, *[number(v) for v in values])
        out.print(compared)
    for warning in result["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)


@app.command("reindex")
def runs_reindex(runs_dir: Optional[Path] = RUNS_DIR) -> None:
    """Rebuild the run index from the run folders."""
    from ..tracking import RunStore

    out.print(f"indexed {RunStore(runs_dir).reindex()} runs")


@app.command("export")
def runs_export(
    runs: list[str] = typer.Argument(None, help="Run ids, prefixes or folders (default: every completed run)."),
    mlflow: str = typer.Option(..., "--mlflow", help="MLflow tracking URI, e.g. sqlite:///mlflow.db or http://host:5000."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Without RUNS: only runs of this recipe."),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Send runs to an MLflow tracking server: config as params, every metric at its step, final metrics, figures."""
    from .. import api
    from ..tracking.loggers import export_to_mlflow

    refs = list(runs or []) or [r["id"] for r in api.list_runs(runs_dir, recipe=recipe, status="completed", limit=100_000)]
    if not refs:
        err.print("no runs to export")
        raise typer.Exit(1)
    for ours, theirs in export_to_mlflow([api.open_run(r, runs_dir) for r in refs], mlflow):
        out.print(f"{ours} -> mlflow run {theirs}", markup=False)
