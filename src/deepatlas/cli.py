"""The ``deepatlas`` command line: thin, it parses, calls the public API and prints.

Errors a user can cause (a bad recipe key, a missing file, an unknown run)
print one line and exit with code 2; ``--debug`` shows the traceback instead.
A failed run exits with 1, an interrupted one with 130.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import ConfigError, DeepAtlasError

app = typer.Typer(
    name="deepatlas",
    help="Train, evaluate, track and compare the cornerstone deep-learning architectures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="List, show and compare runs.", invoke_without_command=True, no_args_is_help=False)
app.add_typer(runs_app, name="runs")
bench_app = typer.Typer(help="Benchmarks against reference implementations, side by side.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

out = Console(highlight=False)
if not out.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out = Console(highlight=False, width=240)
err = Console(stderr=True, highlight=False)
_state = {"debug": False}

RUNS_DIR = typer.Option(None, "--runs-dir", envvar="DEEPATLAS_RUNS_DIR", help="Run store folder (default: ./runs).")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors.")) -> None:
    _state["debug"] = debug


def _setup_logging(quiet: bool, plain: bool) -> None:
    level = logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if err.is_terminal and not plain:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=err, show_path=False, show_time=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("deepatlas").setLevel(level)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value)


def _duration(seconds: Any) -> str:
    from .engine.progress import format_duration

    return format_duration(seconds) if isinstance(seconds, (int, float)) else "-"


# --------------------------------------------------------------------------- train / eval


@app.command()
def train(
    recipe: Optional[str] = typer.Argument(None, help="Recipe name (see `deepatlas recipes`), YAML path or run folder."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides: optim.lr=0.01 train.epochs=5"),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run (id, prefix or folder)."),
    runs_dir: Optional[Path] = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    plain: bool = typer.Option(False, "--plain", help="Log lines instead of a progress bar."),
) -> None:
    """Train a recipe: `deepatlas train quickstart`, `deepatlas train resnet20-fashion-mnist optim.lr=0.05`."""
    from . import api

    _setup_logging(quiet, plain)
    overrides = list(overrides or [])
    progress = False if quiet else (False if plain else None)
    if plain and not quiet:
        from .engine import ProgressBar

        callbacks = [ProgressBar(plain=True)]
    else:
        callbacks = []
    if resume is not None:
        if recipe is not None:
            overrides.insert(0, recipe)  # `--resume RUN key=value`: the first override lands in RECIPE
        run = api.resume(resume, overrides, runs_dir=runs_dir, progress=progress, callbacks=callbacks)
    else:
        if recipe is None:
            raise DeepAtlasError("train: give a recipe (see `deepatlas recipes`) or --resume RUN.")
        run = api.train(recipe, overrides, runs_dir=runs_dir, progress=progress, callbacks=callbacks)
    _report_run(run)
    status = run.status
    if status == "failed":
        raise typer.Exit(1)
    if status == "interrupted":
        raise typer.Exit(130)


def _report_run(run: Any) -> None:
    s = run.summary
    status = s.get("status")
    colour = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(status, "white")
    t = s.get("time") or {}
    out.print(f"run [bold]{run.id}[/bold] [{colour}]{status}[/{colour}]: {s.get('reason', '')}")
    out.print(f"  time {_duration(t.get('wall_s'))} ({_fmt(t.get('samples_per_s'), 0)} samples/s)")
    best = s.get("best") or {}
    if best.get("value") is not None:
        out.print(f"  best {best['metric']} {_fmt(best['value'])} (epoch {best.get('epoch')})")
    test = (s.get("eval") or {}).get("test")
    if test:
        out.print("  test " + "  ".join(f"{k} {_fmt(v)}" for k, v in test.items()), soft_wrap=True)
    if status == "interrupted":
        out.print(f"  resume with: deepatlas train --resume {run.id}")
    out.print(f"  saved to {run.path}")


@app.command("eval")
def eval_(
    run: str = typer.Argument(..., help="Run id, prefix or folder."),
    split: str = typer.Option("test", "--split", help="Split to evaluate: test, val or train."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (default: the run's)."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    samples: int = typer.Option(2000, "--samples", min=0, help="Generative runs: images drawn for FD / IS / coverage (0: skip)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Diffusion runs: sampling steps (default: the recipe's)."),
) -> None:
    """Evaluate a run on a split: accuracy, top-5, macro-F1, NLL, ECE, confusion matrix (PNG too);
    for generative runs the task's metrics plus Frechet distance, IS analogue and class coverage."""
    from . import api

    _setup_logging(False, True)  # progress lines (to stderr) of a long generation: stdout stays the result
    result = api.evaluate(run, split, checkpoint, runs_dir=runs_dir, device=device, samples=samples, steps=steps)
    if as_json:
        out.print_json(json.dumps(result))
        return
    out.print(f"{run}: {split} split, {result['checkpoint']} ({result['weights']} weights, step {result['step']})")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result["metrics"].items():
        table.add_row(key, _fmt(value))
    out.print(table)
    quality = result.get("sample_quality")
    if quality and quality.get("class_share"):
        shares = "  ".join(f"{name} {share:.2f}" for name, share in quality["class_share"].items())
        out.print(f"class share of the samples ({quality['feature_network']}): {shares}")
    for figure in result["figures"]:
        out.print(f"figure: {figure}")


@app.command()
def sample(
    run: str = typer.Argument(..., help="A language-model or generative run (id, prefix or folder)."),
    prompt: str = typer.Option("", "--prompt", help="Text to continue (default: a newline)."),
    max_new_tokens: int = typer.Option(500, "--max-new-tokens", min=1, help="Tokens to generate."),
    temperature: float = typer.Option(0.8, "--temperature", min=0.0, help="Softmax temperature (0: greedy)."),
    top_k: Optional[int] = typer.Option(200, "--top-k", min=1, help="Sample among the k most likely tokens."),
    top_p: Optional[float] = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling threshold."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="best or last (default: best for text, last for images)."),
    n: int = typer.Option(64, "--n", min=1, help="Images: how many (one PNG grid)."),
    label: Optional[int] = typer.Option(None, "--label", min=0, help="Images: the class of a conditional model."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Images: sampling steps of a diffusion model."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (default: the run's)."),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Generate text from a language model (streamed, KV cache), or a PNG grid of images from a VAE, GAN or diffusion run."""
    from . import api

    _setup_logging(True, True)
    opened = api.open_run(run, runs_dir)
    if not (opened.path / "tokenizer.json").is_file():
        path = api.sample_images(opened, n, label=label, steps=steps, seed=seed, checkpoint=checkpoint or "last", device=device)
        typer.echo(str(path))
        return
    checkpoint = checkpoint or "best"
    stream = api.sample(
        opened, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        seed=seed, checkpoint=checkpoint, runs_dir=runs_dir, device=device,
    )
    sys.stdout.write(prompt)
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- runs


@runs_app.callback()
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
    from . import api

    rows = api.list_runs(runs_dir, recipe=recipe, status=status, limit=limit)
    if as_json:
        out.print_json(json.dumps([{k: v for k, v in r.items() if k != "summary"} for r in rows]))
        return
    if not rows:
        out.print("no runs yet: try `deepatlas train quickstart`")
        return
    table = Table()
    for col in ("run", "status", "model", "dataset", "monitor", "best", "test", "params", "time", "created"):
        table.add_column(col, justify="right" if col in ("best", "test", "params", "time") else "left")
    for r in rows:
        table.add_row(
            r["id"], r["status"], r["model"], r["dataset"], r["monitor"] or "-", _fmt(r["best"]), _fmt(r["test"]),
            _fmt(r["params"]), _duration(r["wall_s"]), (r["created"] or "")[:19],
        )
    out.print(table)


def _energy(joules: float, co2e_g: float) -> str:
    """Energy in Wh (kWh when large) and CO2e in g (the method and figures are in each run's summary)."""
    wh = joules / 3600
    amount = f"{wh / 1000:.2f} kWh" if wh >= 1000 else f"{wh:.2f} Wh"
    return f"{amount} ~ {co2e_g:.1f} g CO2e"


def _energy_text(energy: dict[str, Any] | None) -> str:
    if not energy:
        return "-"
    grid = (energy.get("assumptions") or {}).get("grid_g_co2e_per_kwh", 0)
    return f"{_energy(energy['joules'], energy['co2e_g'])} ({energy['method']}, {grid:g} g/kWh)"


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="Run id, prefix or folder."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print summary.json."),
) -> None:
    """Everything about one run: status, metrics, compute, data, environment, files."""
    from . import api

    r = api.open_run(run, runs_dir)
    s = r.summary
    if as_json:
        out.print_json(json.dumps(s))
        return
    out.print(f"[bold]{r.id}[/bold]  {s.get('status')}  {s.get('reason', '')}")
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    best = s.get("best") or {}
    p, flops, t = s.get("params") or {}, s.get("flops") or {}, s.get("time") or {}
    prog = s.get("progress") or {}
    rows = [
        ("recipe", s.get("recipe")), ("model", s.get("model")), ("dataset", s.get("dataset")), ("task", s.get("task")),
        ("parameters", _fmt(p.get("total"))),
        ("FLOPs/sample", f"forward {_fmt(flops.get('forward_per_sample'))}, train {_fmt(flops.get('train_per_sample'))}"),
        ("progress", f"epoch {prog.get('epoch')}/{prog.get('epochs')}, step {prog.get('step')}/{prog.get('total_steps')}"),
        ("time", f"{_duration(t.get('wall_s'))} wall, {_duration(t.get('cpu_s'))} CPU, {_fmt(t.get('samples_per_s'), 0)} samples/s"),
        ("peak memory", f"{_fmt(s.get('peak_memory_mb'), 0)} MB"),
        ("energy", _energy_text(s.get("energy"))),
        ("best", f"{best.get('metric')} {_fmt(best.get('value'))} (epoch {best.get('epoch')})"),
    ]
    rows += [(f"last {k}", _fmt(v)) for k, v in (s.get("final") or {}).items()]
    for split, metrics in (s.get("eval") or {}).items():
        rows += [(f"{split} {k}", _fmt(v)) for k, v in metrics.items()]
    for split, fp in ((s.get("data") or {}).get("fingerprints") or {}).items():
        rows.append((f"data {split}", fp[:16]))
    env = s.get("environment") or {}
    rows += [("device", f"{env.get('device')} ({env.get('device_name')})"),
             ("versions", f"deepatlas {env.get('deepatlas')}, torch {env.get('torch')}, python {env.get('python')}"),
             ("git", json.dumps(env.get("git"))), ("folder", str(r.path))]
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)


@runs_app.command("summary")
def runs_summary(
    ctx: typer.Context,
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Only runs of this recipe."),
    split: str = typer.Option("test", "--split", help="Which evaluation to aggregate."),
    as_json: bool = typer.Option(False, "--json", help="Print the groups as JSON."),
) -> None:
    """Mean +- std of the completed runs' metrics per recipe, model and dataset (several seeds or folds)."""
    from . import api
    from .tracking.compare import aggregate

    runs_dir = (ctx.obj or {}).get("runs_dir")
    groups = aggregate(api.list_runs(runs_dir, recipe=recipe), split)
    if as_json:
        out.print_json(json.dumps(groups))
        return
    if not groups:
        out.print("no completed runs to summarise")
        return
    table = Table()
    for col in ("recipe", "model", "dataset", "runs", f"{split} metrics (mean +- std)", "mean time"):
        table.add_column(col, justify="right" if col in ("runs", "mean time") else "left")
    for g in groups:
        shown = "  ".join(f"{k} {m['mean']:.4f} +- {m['std']:.4f}" for k, m in g["metrics"].items())
        table.add_row(g["recipe"], g["model"], g["dataset"], str(g["runs"]), shown, _duration(g["mean_wall_s"]))
    out.print(table)


@runs_app.command("compare")
def runs_compare(
    runs: list[str] = typer.Argument(..., help="Two or more run ids, prefixes or folders."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Side by side: the config keys that differ, then metrics; warns if the data differed."""
    from . import api

    result = api.compare_runs(runs, runs_dir)
    if as_json:
        out.print_json(json.dumps(result))
        return
    for title, rows in (("config (differences only)", result["config"]), ("metrics", result["metrics"])):
        table = Table(title=title)
        table.add_column("key")
        for run_id in result["runs"]:
            table.add_column(run_id, justify="right")
        for key, values in rows.items():
            table.add_row(key, *[_fmt(v) for v in values])
        out.print(table)
    for warning in result["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {warning}")


@runs_app.command("reindex")
def runs_reindex(runs_dir: Optional[Path] = RUNS_DIR) -> None:
    """Rebuild the run index from the run folders."""
    from .tracking import RunStore

    out.print(f"indexed {RunStore(runs_dir).reindex()} runs")


# --------------------------------------------------------------------------- benchmarks


@bench_app.command("transformer")
def bench_transformer(
    n_layer: int = typer.Option(4, help="Layers."),
    n_head: int = typer.Option(4, help="Attention heads."),
    n_embd: int = typer.Option(128, help="Width."),
    block_size: int = typer.Option(64, help="Context length."),
    batch_size: int = typer.Option(12, help="Sequences per step."),
    calls: int = typer.Option(20, help="Training steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Training throughput of our GPT vs Hugging Face GPT-2 at the same configuration (default: nanoGPT's CPU one)."""
    import torch

    from .bench.transformer import TransformerBench, run

    config = TransformerBench(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, batch_size=batch_size,
        calls=calls, rounds=rounds,
    )
    rows = run(config, torch.device(device))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"GPT training step, {n_layer} layers x {n_embd} wide, batch {batch_size} x {block_size} tokens, {torch.get_num_threads()} threads")
    for col in ("precision", "ours tokens/s", "HF tokens/s", "ours / HF", "ours MFU", "HF MFU", "matmul peak GFLOP/s", "spread"):
        table.add_column(col, justify="left" if col == "precision" else "right")
    for r in rows:
        table.add_row(
            r["precision"], f"{r['ours_tokens_per_s']:,.0f}", f"{r['hf_tokens_per_s']:,.0f}", f"{r['ratio']:.2f}x",
            f"{r['ours_mfu']:.1%}", f"{r['hf_mfu']:.1%}", f"{r['peak_gflops']:,.0f}", f"{r['spread']:.0%}",
        )
    out.print(table)
    out.print("ratio > 1: ours is faster. Spread: (max - min) / median of the rounds, a noise gauge.")


@bench_app.command("gnn")
def bench_gnn(
    dataset: list[str] = typer.Option(["cora", "citeseer"], "--dataset", help="Planetoid graphs (repeat the option)."),
    model: list[str] = typer.Option(["gcn", "gat"], "--model", help="gcn and/or gat (repeat the option)."),
    calls: int = typer.Option(20, help="Training epochs per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Full-batch training epoch time of our GCN and GAT vs PyTorch Geometric's on Planetoid graphs."""
    import torch

    from .bench.gnn import GNNBench, run

    for m in model:
        if m not in ("gcn", "gat"):
            raise ConfigError(f"--model: {m!r} is not benchmarked (allowed: gcn, gat).")
    rows = run(GNNBench(datasets=tuple(dataset), models=tuple(model), calls=calls, rounds=rounds), torch.device(device))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"full-batch training epoch (forward, loss, backward, Adam), {torch.get_num_threads()} threads")
    for col in ("dataset", "model", "ours ms/epoch", "PyG ms/epoch", "PyG / ours", "spread"):
        table.add_column(col, justify="left" if col in ("dataset", "model") else "right")
    for r in rows:
        table.add_row(r["dataset"], r["model"], f"{r['ours_ms']:.1f}", f"{r['pyg_ms']:.1f}", f"{r['ratio']:.2f}x", f"{r['spread']:.0%}")
    out.print(table)
    out.print("ratio > 1: ours is faster. Spread: (max - min) / median of the rounds, a noise gauge.")


# --------------------------------------------------------------------------- catalogues


@app.command()
def models(family: Optional[str] = typer.Option(None, "--family", help="Only this family (mlp, cnn, resnet, ...).")) -> None:
    """Registered models with their parameter counts at their preset sizes."""
    import torch

    from .models import count_parameters
    from .registry import MODELS

    table = Table()
    for col in ("model", "family", "parameters", "description"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for entry in MODELS:
        if family and entry.family != family:
            continue
        with torch.device("meta"):  # count without allocating or initialising weights
            n = count_parameters(entry.factory(entry.config))
        table.add_row(entry.name, entry.family, f"{n:,}", entry.doc)
    out.print(table)


@app.command()
def datasets() -> None:
    """Built-in datasets and bring-your-own readers."""
    from .registry import DATASETS

    table = Table()
    table.add_column("dataset")
    table.add_column("kind")
    table.add_column("description")
    for entry in DATASETS:
        table.add_row(entry.name, entry.family, entry.doc)
    out.print(table)


@app.command()
def recipes() -> None:
    """Recipes you can train by name."""
    from .config import list_recipes, read_yaml

    table = Table()
    table.add_column("recipe")
    table.add_column("description")
    for name, path in list_recipes().items():
        raw = read_yaml(path) or {}
        description = " ".join(str(raw.get("description", "")).split())
        table.add_row(name, description.split(". ")[0].rstrip(".") + "." if description else "")
    out.print(table)


@app.command()
def config(
    recipe: str = typer.Argument(..., help="Recipe name or path."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides."),
    docs: bool = typer.Option(False, "--docs", help="Every key with its type, value and one-line doc."),
) -> None:
    """Print the fully resolved config of a recipe (what `train` would run)."""
    from . import schema
    from .config import load_recipe

    cfg = load_recipe(recipe, list(overrides or []))
    if not docs:
        typer.echo(cfg.to_yaml(), nl=False)  # raw text: it must load back as YAML
        return
    for section in ("data", "model", "task", "optim", "schedule", "train"):
        value = getattr(cfg, section)
        table = Table(title=section)
        for col in ("key", "value", "type", "doc"):
            table.add_column(col)
        parts = [value] + ([value.options] if getattr(value, "options", None) is not None else [])
        for part in parts:
            for name, kind, _default, doc in schema.field_docs(type(part)):
                if name == "options":
                    continue
                table.add_row(name, _fmt(getattr(part, name)), kind, doc)
        out.print(table)


from .cli_tune import register as _register_tune  # noqa: E402 - `tune`, `studies`, `bench tune` live in cli_tune.py

_register_tune(app, bench_app)


def main() -> None:
    """Entry point of the ``deepatlas`` console script."""
    try:
        app()
    except DeepAtlasError as exc:
        if _state["debug"]:
            raise
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)  # messages may hold [brackets]
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
