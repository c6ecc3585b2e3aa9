"""``deepatlas train``, ``eval`` and ``sample``: one run from a recipe, and what a finished run can do."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import DeepAtlasError
from .common import RUNS_DIR, setup_logging
from .format import duration, number, out, table

app = typer.Typer()


@app.command()
def train(
    recipe: Optional[str] = typer.Argument(None, help="Recipe name (see `deepatlas recipes`), YAML path or run folder."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides: optim.lr=0.01 train.epochs=5"),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run (id, prefix or folder)."),
    runs_dir: Optional[Path] = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    plain: bool = typer.Option(False, "--plain", help="Log lines instead of a progress bar."),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Train on N local processes (torchrun; DDP, or FSDP with train.strategy=fsdp). "
        "On several machines run `torchrun --nnodes ... -m deepatlas train RECIPE` instead."),
) -> None:
    """Train a recipe: `deepatlas train quickstart`, `deepatlas train resnet20-fashion-mnist optim.lr=0.05`."""
    from ..config import load_recipe

    setup_logging(quiet, plain)
    overrides = list(overrides or [])
    if resume is None:
        if recipe is None:
            raise DeepAtlasError("train: give a recipe (see `deepatlas recipes`) or --resume RUN.")
        config = load_recipe(recipe, overrides)  # a mistake in the recipe fails before torch is imported
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        args = [*([recipe] if recipe else []), *overrides, *(["--resume", resume] if resume else []),
                *(["--runs-dir", str(runs_dir)] if runs_dir else []), *(["--quiet"] if quiet else []), *(["--plain"] if plain else [])]
        raise typer.Exit(launch(nproc, args))
    from .. import api

    progress = False if quiet else (False if plain else None)
    if plain and not quiet:
        from ..engine import ProgressBar

        callbacks = [ProgressBar(plain=True)]
    else:
        callbacks = []
    if resume is not None:
        if recipe is not None:
            overrides.insert(0, recipe)  # `--resume RUN key=value`: the first override lands in RECIPE
        run = api.resume(resume, overrides, runs_dir=runs_dir, progress=progress, callbacks=callbacks)
    else:
        run = api.train(config, runs_dir=runs_dir, progress=progress, callbacks=callbacks)
    if int(os.environ.get("RANK", "0")) > 0:  # rank 0 reports the run; the others leave with its status
        raise typer.Exit({"failed": 1, "interrupted": 130}.get(run.status or "", 0))
    _report_run(run)
    status = run.status
    if status == "failed":
        raise typer.Exit(1)
    if status == "interrupted":
        raise typer.Exit(130)


def launch(nproc: int, args: list[str], command: str = "train") -> int:
    """``deepatlas COMMAND ARGS`` on ``nproc`` local processes through torchrun (``torch.distributed.run``);
    its exit code (0 when every process succeeded)."""
    import subprocess

    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "deepatlas", command, *args]
    try:
        return subprocess.run(argv, check=False).returncode
    except KeyboardInterrupt:  # torchrun passed the signal on; its workers checkpoint and stop
        return 130


def _report_run(run: Any) -> None:
    s = run.summary
    status = s.get("status")
    colour = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(status, "white")
    t = s.get("time") or {}
    out.print(f"run [bold]{run.id}[/bold] [{colour}]{status}[/{colour}]: {s.get('reason', '')}")
    out.print(f"  time {duration(t.get('wall_s'))} ({number(t.get('samples_per_s'), 0)} samples/s)")
    best = s.get("best") or {}
    if best.get("value") is not None:
        out.print(f"  best {best['metric']} {number(best['value'])} (epoch {best.get('epoch')})")
    test = (s.get("eval") or {}).get("test")
    if test:
        out.print("  test " + "  ".join(f"{k} {number(v)}" for k, v in test.items()), soft_wrap=True)
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
    from .. import api

    setup_logging(False, True)  # progress lines (to stderr) of a long generation: stdout stays the result
    result = api.evaluate(run, split, checkpoint, runs_dir=runs_dir, device=device, samples=samples, steps=steps)
    if as_json:
        out.print_json(json.dumps(result))
        return
    out.print(f"{run}: {split} split, {result['checkpoint']} ({result['weights']} weights, step {result['step']})")
    metrics = table(("metric", "value"), right=("value",))
    for key, value in result["metrics"].items():
        metrics.add_row(key, number(value))
    out.print(metrics)
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
    from .. import api

    setup_logging(True, True)
    opened = api.open_run(run, runs_dir)
    if not api.run_task(opened).can("generate"):  # the task says what the run does: images (or a clear error)
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
