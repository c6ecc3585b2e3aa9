"""The public Python API: train, resume, evaluate, open, list and compare runs.

Everything the CLI does goes through these functions::

    import deepatlas
    run = deepatlas.train("quickstart", ["train.epochs=5"])
    print(run.summary["best"], deepatlas.evaluate(run.id)["metrics"])

``train`` returns the finished :class:`~deepatlas.tracking.Run` so that an
outer loop (hyperparameter search) can call it many times in one process.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .build import (
    bind_run_length,
    build,
    build_model,
    build_task,
    calibrate,
    checkpoint_path,
    load_trained_model,
    resolve_model_config,
    restore_calibration,
    run_task,
    seed_everything,
)
from .config import Config, load_recipe, resumable_keys
from .data import load_dataset
from .data.bundle import DataBundle
from .engine import Callback, ProgressBar, Trainer, distributed, load_checkpoint
from .engine.device import autocast, autocast_dtype, fast_bf16, resolve_device
from .engine.optim import FineTuning
from .errors import ConfigError, RunError
from .io import write_json
from .models.base import count_parameters
from .tasks.base import Task
from .tracking import Run, RunRecorder, RunStore, count_flops, environment

log = logging.getLogger(__name__)

# Keys that may change when a run is resumed (how long and where, not what): declared on each option.
RESUMABLE_KEYS = resumable_keys()

__all__ = [
    "RESUMABLE_KEYS", "build_model", "build_task", "checkpoint_path", "compare_runs", "evaluate", "fit_model", "list_runs", "load_trained_model",
    "open_run", "resolve_model_config", "resume", "run_task", "sample", "sample_images", "seed_everything", "train",
]


def _as_config(config: Config | str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any]) -> Config:
    if isinstance(config, Config):
        return config.override(overrides) if overrides else config
    return load_recipe(config, overrides)


def _default_callbacks(progress: bool | None) -> list[Callback]:
    if progress is False:
        return []
    if progress is None:
        from rich.console import Console

        console = Console(stderr=True)
        return [ProgressBar(plain=not (console.is_terminal or console.is_jupyter))]
    return [ProgressBar(plain=False)]


# --------------------------------------------------------------------------- train and resume


def train(
    config: Config | str | os.PathLike[str],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    runs_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
) -> Run:
    """Train a recipe (name, path or :class:`Config`) and return the finished run.

    ``progress``: None shows a bar on a terminal and log lines elsewhere;
    False shows nothing. ``callbacks`` see every engine event and can stop the
    run (e.g. a search pruner).
    """
    config = _as_config(config, overrides)
    autocast_dtype(config.train.precision, resolve_device(config.train.device))  # fp16 on a CPU fails before any work
    with distributed.session(resolve_device(config.train.device).type, config.train.dist_timeout_s) as here:
        return _train(config, here, runs_dir, callbacks, progress)


def _train(
    config: Config, here: distributed.World, runs_dir: str | Path | None, callbacks: Sequence[Callback], progress: bool | None,
) -> Run:
    init = _init_source(config.train.init_from, runs_dir) if config.train.init_from else None
    data = load_dataset(config.data, state_dir=init[1] if init else None)  # a pre-trained run's tokenizer
    config, task, model = build(bind_run_length(config, data.num_batches("train")), data.meta)
    _seed_rank(config, here)
    init_report = _load_init(model, init[0]) if init else None
    FineTuning(model, config.optim).freeze()  # a pattern that matches nothing fails before the run exists
    device = resolve_device(config.train.device)
    first_batch = next(iter(data.eval_batches("train", torch.device("cpu"))), None)
    summary = {
        "status": "created",
        "model": config.model.name,
        "dataset": config.data.name,
        "task": config.task.name,
        "params": {"total": count_parameters(model), "trainable": count_parameters(model, trainable_only=True)},
        "flops": count_flops(lambda: build_model(config), task, first_batch) if first_batch is not None else None,
        "data": {
            "name": data.name,
            "fingerprints": data.fingerprints(),
            "sizes": data.meta.get("sizes"),
            "meta": {k: v for k, v in data.meta.items() if k != "sizes" and not k.startswith("_")},
        },
        "environment": environment(device),
        "init_from": init_report,
        "lineage": task.lineage(),
    }
    summary["distributed"] = {"processes": here.size, "strategy": config.train.strategy} if here.active else None
    if here.main:
        run = RunStore(runs_dir).create(config, summary)
        data.save(run.path)  # the fitted preprocessing (and tokenizer): deepatlas.load(run) reads it
        log.info("run %s: %s", run.id, run.path)
    if here.active:  # rank 0 made the run folder; the others learn where it is and never write to it
        path = Path(distributed.broadcast(str(run.path) if here.main else None))
        run = run if here.main else Run(path)
    return _fit(run, config, data, model, task, callbacks, progress, resume_from=None)


def _seed_rank(config: Config, here: distributed.World) -> None:
    """Ranks after 0 draw their own random numbers (dropout, masks of their slice); the weights are rank 0's,
    which DDP broadcasts."""
    if here.rank > 0:
        from .io import derive_seed

        seed_everything(derive_seed(config.train.seed, "rank", here.rank))


def resume(
    run_ref: str | Path | Run,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    runs_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
) -> Run:
    """Continue an interrupted (or extend a finished) run from its last checkpoint.

    Only keys about how long and where to train may change (options declared ``resumable``),
    e.g. ``train.epochs=40`` to train a completed run further.
    """
    run = run_ref if isinstance(run_ref, Run) else open_run(run_ref, runs_dir)
    with distributed.session(resolve_device(run.config.train.device).type, run.config.train.dist_timeout_s) as here:
        return _resume(run, here, overrides, callbacks, progress)


def _resume(
    run: Run, here: distributed.World, overrides: Sequence[str] | Mapping[str, Any], callbacks: Sequence[Callback],
    progress: bool | None,
) -> Run:
    config = run.config
    if overrides:
        items = overrides.items() if isinstance(overrides, Mapping) else [o.partition("=")[::2] for o in overrides]
        for key, _ in items:
            if key.strip() not in RESUMABLE_KEYS:
                raise ConfigError(
                    f"{key.strip()}: cannot change when resuming (only {', '.join(sorted(RESUMABLE_KEYS))}); "
                    "start a new run instead."
                )
        config = config.override(overrides)
    summary = run.summary
    status = summary.get("status")
    same_host = (summary.get("environment") or {}).get("hostname") == socket.gethostname()
    if here.main and status == "running" and same_host and _alive(summary.get("pid")):
        raise RunError(f"run {run.id} is still running (pid {summary['pid']}); stop it first.")
    checkpoint = run.checkpoint("last")
    if not checkpoint.is_file():
        raise RunError(f"run {run.id} has no checkpoint to resume from ({checkpoint}); train it again.")
    progress_info = summary.get("progress") or {}
    if status == "completed" and not overrides:
        raise RunError(
            f"run {run.id} already completed ({progress_info.get('step')} steps); to train it longer, "
            f"resume with train.epochs=N (more than {progress_info.get('epochs')})."
        )
    data = load_dataset(config.data, state_dir=run.path)
    fingerprints = data.fingerprints()
    recorded = (summary.get("data") or {}).get("fingerprints") or {}
    for split in ("train", "val"):
        if recorded.get(split) and recorded[split] != fingerprints[split]:
            raise RunError(f"run {run.id}: the {split} data changed since the run started (fingerprint differs).")
    config, task, model = build(config, data.meta)
    _seed_rank(config, here)
    if overrides and here.main:
        from .io import write_text

        write_text(run.config_path, config.to_yaml())
    log.info("resuming run %s from step %s", run.id, progress_info.get("step"))
    return _fit(run, config, data, model, task, callbacks, progress, resume_from=checkpoint)


def fit_model(
    run: Run, config: Config, data: DataBundle, model: nn.Module, task: Task, *,
    callbacks: Sequence[Callback] = (), progress: bool | None = None,
) -> Run:
    """Train an already built ``model`` (a pruned network, a smaller one) as the new run ``run``: the loop
    ``train`` runs, with the run's checkpoints, logs and test evaluation. ``deepatlas.compress`` fine-tunes so."""
    return _fit(run, config, data, model, task, callbacks, progress, resume_from=None)


def _init_source(ref: str, runs_dir: str | Path | None) -> tuple[Path, Path | None]:
    """(checkpoint, run folder) for ``train.init_from``: a run id/folder or a checkpoint file."""
    path = Path(ref).expanduser()
    if path.is_file():
        folder = path.parent.parent if path.parent.name == "checkpoints" else None
        return path, folder
    run = open_run(ref, runs_dir)
    return checkpoint_path(run, "best"), run.path


def _load_init(model: nn.Module, path: Path) -> dict[str, Any]:
    """Load the tensors of a checkpoint whose names and shapes match the model (e.g. all but a new head)."""
    ckpt = load_checkpoint(path)
    weights = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    own = model.state_dict()
    matched = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ConfigError(f"train.init_from: no layer of {path} matches this model (is it the same architecture?).")
    model.load_state_dict(matched, strict=False)
    fresh = sorted(set(own) - set(matched))
    log.info("initialised %d tensors from %s; %d start fresh", len(matched), path, len(fresh))
    return {"checkpoint": str(path), "loaded": len(matched), "fresh": fresh, "ignored": sorted(set(weights) - set(matched))}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return pid != os.getpid()


def _fit(
    run: Run, config: Config, data: DataBundle, model: nn.Module, task: Task,
    callbacks: Sequence[Callback], progress: bool | None, resume_from: Path | None,
) -> Run:
    from .tracking.loggers import build_loggers

    here = distributed.world()
    if not here.main:  # rank 0 records, logs and shows progress; the other ranks only train
        Trainer(model, task, data, config, checkpoint_dir=run.path / "checkpoints").fit(resume_from=resume_from)
        distributed.barrier()
        return run
    loggers = build_loggers(config.train.loggers, run, config.train.mlflow_uri, run.path.parent)
    trainer = Trainer(
        model, task, data, config, checkpoint_dir=run.path / "checkpoints",
        callbacks=[RunRecorder(run), *_default_callbacks(progress), *loggers, *callbacks],
    )
    summary = run.summary  # the thread count the trainer chose (the default depends on the work and the cores)
    summary.setdefault("environment", {})["torch_threads"] = trainer.threads
    _record_precision(summary, trainer)
    run.write_summary(summary)
    result = trainer.fit(resume_from=resume_from)
    if run.summary.get("environment", {}).get("precision") != trainer.precision:  # resumed in the checkpoint's
        run.write_summary(_record_precision(run.summary, trainer))
    if here.active:  # every rank is done training; rank 0 alone tests and reports, with no collective
        distributed.barrier()
    from .report import plot_curves

    plot_curves(run.metrics("epoch"), run.path / "curves.png", title=f"{run.id}")
    if result.status == "completed" and task.calibrates:  # state fitted on the best weights (a baseline hazard...)
        best, _, _, _ = load_trained_model(run, config, task, "best")
        calibrate(task, best.to(trainer.device), data, trainer.device, run.path)
    if result.status == "completed" and config.train.test:
        _evaluate(run, config, data, task, "test", "best", device=trainer.device)
    for logger in loggers:  # final metrics and figures, once the test evaluation has written them
        logger.finish(run)
    return run


def _record_precision(summary: dict[str, Any], trainer: Trainer) -> dict[str, Any]:
    """The precision and memory format the trainer resolved (``auto`` depends on the hardware and the work)."""
    summary.setdefault("environment", {}).update(precision=trainer.precision, channels_last=trainer.channels_last)
    return summary


def trained_precision(run: Run, config: Config) -> str:
    """The precision a run trained in: its recipe's, or for ``auto`` the one recorded when it trained (fp32 before)."""
    if config.train.precision != "auto":
        return config.train.precision
    return str(run.summary.get("environment", {}).get("precision") or "fp32")


# --------------------------------------------------------------------------- evaluation


def evaluate(
    run_ref: str | Path | Run,
    split: str = "test",
    checkpoint: str = "best",
    *,
    runs_dir: str | Path | None = None,
    device: str | None = None,
    samples: int = 2000,
    steps: int | None = None,
) -> dict[str, Any]:
    """Evaluate a run's checkpoint on a split; writes ``eval-<split>.json`` and figures.

    ``checkpoint`` is ``best`` (falls back to ``last``) or ``last``. When the
    run kept an EMA of its weights, the EMA weights are evaluated. Generative
    runs also draw ``samples`` images (diffusion: with ``steps`` sampling steps)
    for the Frechet distance, IS analogue and class coverage (0: skip).
    """
    run = run_ref if isinstance(run_ref, Run) else open_run(run_ref, runs_dir)
    config = run.config
    data = load_dataset(config.data, state_dir=run.path)
    task = build_task(config, data.meta)
    return _evaluate(run, config, data, task, split, checkpoint, resolve_device(device or config.train.device), samples, steps)


def _evaluate(
    run: Run, config: Config, data: DataBundle, task: Task, split: str, checkpoint: str, device: torch.device,
    samples: int = 0, steps: int | None = None,
) -> dict[str, Any]:
    from . import evaluation as ev

    model, ckpt, path, use_ema = load_trained_model(run, config, task, checkpoint)
    model.to(device).eval()
    if task.calibrates and checkpoint == "best":
        restore_calibration(task, run.path)
    elif task.calibrates:  # the calibration belongs to the best weights: fit it again for these
        calibrate(task, model, data, device, None)
    precision = trained_precision(run, config)
    if config.train.precision == "auto" and precision == "bf16" and not fast_bf16(device):
        precision = "fp32"  # evaluated elsewhere than it trained: bf16 emulated on this CPU would only be slower
    with autocast(device, autocast_dtype(precision, device)):
        result = task.evaluate(model, data.eval_batches(split, device))
    state = ckpt.get("state") or {}
    batch = next(iter(data.eval_batches(split, device)), None)
    figures = task.figures(model, batch, run.path, split, result) if batch is not None else []
    out: dict[str, Any] = {
        "split": split,
        "checkpoint": path.name,
        "weights": "ema" if use_ema else "model",
        # epochs begun (1-based, as the summary counts them): the state's epoch is 0-based and is the finished one until
        # the trainer moves on to the next
        "trained_epochs": None if state.get("epoch") is None else int(state["epoch"]) + (1 if state.get("batch_in_epoch") else 0),
        "step": state.get("step"),
        "metrics": result.metrics,
        "fingerprint": data.split(split).fingerprint(),
        "figures": [str(f) for f in figures],
    }
    if task.can("sample") and samples > 0:
        quality, pictures = ev.sample_quality(run.path, model, task, data, split, samples, steps)
        out["metrics"] = {**out["metrics"], **quality.pop("metrics", {})}
        out["sample_quality"] = quality
        out["figures"] += pictures
    write_json(run.path / f"eval-{split}.json", {**out, "arrays": _jsonable(result.arrays)})
    summary = run.summary
    summary.setdefault("eval", {})[split] = out["metrics"]
    summary.setdefault("data", {}).setdefault("fingerprints", {})[split] = out["fingerprint"]
    run.write_summary(summary)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- generation


def sample(
    run_ref: str | Path | Run,
    prompt: str = "",
    *,
    max_new_tokens: int = 500,
    temperature: float = 0.8,
    top_k: int | None = 200,
    top_p: float | None = None,
    seed: int = 0,
    checkpoint: str = "best",
    runs_dir: str | Path | None = None,
    device: str | None = None,
) -> Iterator[str]:
    """Stream text from a language-model run: yields each new piece as it is generated."""
    from .predict import load

    predictor = load(run_ref, checkpoint=checkpoint, runs_dir=runs_dir, device=device)
    yield from predictor.stream(
        prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
    )


def sample_images(
    run_ref: str | Path | Run,
    n: int = 64,
    *,
    label: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    checkpoint: str = "last",
    runs_dir: str | Path | None = None,
    device: str | None = None,
) -> Path:
    """Draw ``n`` images from a generative run (VAE, GAN, diffusion) and save them as a PNG grid in the run."""
    from .predict import load
    from .report.plots import save_image_grid

    predictor = load(run_ref, checkpoint=checkpoint, runs_dir=runs_dir, device=device)
    images = predictor.sample(n, label=label, steps=steps, seed=seed)
    name = f"samples-{checkpoint}-seed{seed}" + (f"-label{label}" if label is not None else "") + ".png"
    conditional = predictor.task.sample_labels(predictor.model, 1) is not None
    nrow = predictor.model.config.num_classes if conditional and label is None else None
    return save_image_grid(images, predictor.run.path / name, nrow=nrow)


# --------------------------------------------------------------------------- the run store


def open_run(ref: str | Path, runs_dir: str | Path | None = None) -> Run:
    """A run by id, unique id prefix or folder path."""
    return RunStore(runs_dir).open(ref)


def list_runs(
    runs_dir: str | Path | None = None, *, recipe: str | None = None, status: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Index rows of the runs, newest first."""
    return RunStore(runs_dir).rows(recipe=recipe, status=status, limit=limit)


def compare_runs(refs: Sequence[str | Path], runs_dir: str | Path | None = None, *, lineage: bool = False) -> dict[str, Any]:
    """Config differences, metrics and data warnings of several runs side by side; ``lineage``: each run
    preceded by the runs it derives from (a pruned model's original, a student's teacher)."""
    from .tracking.compare import compare

    runs = [open_run(r, runs_dir) for r in refs]
    if lineage:
        from .compress.lineage import expand

        runs = expand(runs)
    return compare(runs)
