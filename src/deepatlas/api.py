"""The public Python API: train, resume, evaluate, open, list and compare runs.

Everything the CLI does goes through these functions::

    import deepatlas
    run = deepatlas.train("quickstart", ["train.epochs=5"])
    print(run.summary["best"], deepatlas.evaluate(run.id)["metrics"])

``train`` returns the finished :class:`~deepatlas.tracking.Run` so that an
outer loop (hyperparameter search) can call it many times in one process.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import schema
from .config import Config, load_recipe
from .data import load_dataset
from .engine import Callback, ProgressBar, Trainer, load_checkpoint
from .engine.device import autocast, autocast_dtype, resolve_device
from .errors import CheckpointError, ConfigError, RunError
from .io import write_json
from .models.base import DATA_BOUND_FIELDS, count_parameters
from .registry import MODELS, TASKS
from .tracking import Run, RunRecorder, RunStore, count_flops, environment

log = logging.getLogger(__name__)

# Keys that may change when a run is resumed: how long and where, not what.
RESUMABLE_KEYS = {
    "train.epochs", "train.max_steps", "train.device", "train.threads", "train.log_every",
    "train.checkpoint_every", "train.early_stopping", "train.test", "data.num_workers", "data.eval_batch_size",
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- building blocks


def resolve_model_config(config: Config, meta: Mapping[str, Any]) -> Config:
    """Fill data-bound model keys (classes, channels, input size) from the dataset.

    A key left at its preset value takes the data's value; a key set to
    something else that disagrees with the data is an error.
    """
    entry = MODELS.get(config.model.name, "model.name")
    options, preset = config.model.options, entry.config
    updates = {}
    for key in DATA_BOUND_FIELDS:
        if not hasattr(options, key) or meta.get(key) is None:
            continue
        have, want = getattr(options, key), meta[key]
        if have == want:
            continue
        if have != getattr(preset, key):
            raise ConfigError(
                f"model.{key}: is {have}, but dataset {config.data.name} has {key} = {want} "
                f"(remove model.{key} to take it from the data)."
            )
        updates[key] = want
    context = meta.get("block_size")
    if context is not None and getattr(options, "block_size", context) < context:
        raise ConfigError(
            f"model.block_size: {options.block_size} is shorter than the data's windows (data.block_size={context})."
        )
    options = schema.replace(options, updates, "model")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, options=options))


def build_model(config: Config) -> nn.Module:
    """The model of a (resolved) config, freshly initialised."""
    return MODELS.get(config.model.name, "model.name").factory(config.model.options)


def build_task(config: Config, meta: Mapping[str, Any]) -> Any:
    return TASKS.get(config.task.name, "task.name").factory(config.task.options, meta)


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
    init = _init_source(config.train.init_from, runs_dir) if config.train.init_from else None
    data = load_dataset(config.data, state_dir=init[1] if init else None)  # a pre-trained run's tokenizer
    config = resolve_model_config(config, data.meta)
    task = build_task(config, data.meta)
    seed_everything(config.train.seed)
    model = build_model(config)
    init_report = _load_init(model, init[0]) if init else None
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
    }
    run = RunStore(runs_dir).create(config, summary)
    if hasattr(data, "save"):  # e.g. the tokenizer
        data.save(run.path)
    log.info("run %s: %s", run.id, run.path)
    return _fit(run, config, data, model, task, callbacks, progress, resume_from=None)


def resume(
    run_ref: str | Path | Run,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    runs_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
) -> Run:
    """Continue an interrupted (or extend a finished) run from its last checkpoint.

    Only keys about how long and where to train may change (``RESUMABLE_KEYS``),
    e.g. ``train.epochs=40`` to train a completed run further.
    """
    run = run_ref if isinstance(run_ref, Run) else open_run(run_ref, runs_dir)
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
    if status == "running" and same_host and _alive(summary.get("pid")):
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
    task = build_task(config, data.meta)
    seed_everything(config.train.seed)
    model = build_model(config)
    if overrides:
        from .io import write_text

        write_text(run.config_path, config.to_yaml())
    log.info("resuming run %s from step %s", run.id, progress_info.get("step"))
    return _fit(run, config, data, model, task, callbacks, progress, resume_from=checkpoint)


def _init_source(ref: str, runs_dir: str | Path | None) -> tuple[Path, Path | None]:
    """(checkpoint, run folder) for ``train.init_from``: a run id/folder or a checkpoint file."""
    path = Path(ref).expanduser()
    if path.is_file():
        folder = path.parent.parent if path.parent.name == "checkpoints" else None
        return path, folder
    run = open_run(ref, runs_dir)
    best = run.checkpoint("best")
    return (best if best.is_file() else run.checkpoint("last")), run.path


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
    run: Run, config: Config, data: Any, model: nn.Module, task: Any,
    callbacks: Sequence[Callback], progress: bool | None, resume_from: Path | None,
) -> Run:
    trainer = Trainer(
        model, task, data, config, checkpoint_dir=run.path / "checkpoints",
        callbacks=[RunRecorder(run), *_default_callbacks(progress), *callbacks],
    )
    result = trainer.fit(resume_from=resume_from)
    from .report import plot_curves

    plot_curves(run.metrics("epoch"), run.path / "curves.png", title=f"{run.id}")
    if result.status == "completed" and config.train.test:
        _evaluate(run, config, data, task, "test", "best", device=trainer.device)
    return run


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


def load_trained_model(run: Run, config: Config, task: Any, checkpoint: str = "best") -> tuple[nn.Module, dict[str, Any], Path, bool]:
    """The run's model with the weights of ``checkpoint`` (EMA weights when kept)."""
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"--checkpoint: {checkpoint!r} is not allowed (allowed: best, last).")
    path = run.checkpoint(checkpoint)
    if checkpoint == "best" and not path.is_file():
        path = run.checkpoint("last")
    ckpt = load_checkpoint(path)
    model = build_model(config)
    use_ema = ckpt.get("ema") is not None
    try:
        model.load_state_dict(ckpt["model"])
        if use_ema:  # the averaged module: the whole model, or a part of it (a GAN's generator)
            task.ema_target(model).load_state_dict(ckpt["ema"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not fit the run's model ({exc}).") from None
    return model.eval(), ckpt, path, use_ema


def _evaluate(
    run: Run, config: Config, data: Any, task: Any, split: str, checkpoint: str, device: torch.device,
    samples: int = 0, steps: int | None = None,
) -> dict[str, Any]:
    model, ckpt, path, use_ema = load_trained_model(run, config, task, checkpoint)
    model.to(device).eval()
    with autocast(device, autocast_dtype(config.train.precision, device)):
        evaluation = task.evaluate(model, data.eval_batches(split, device))
    state = ckpt.get("state") or {}
    result: dict[str, Any] = {
        "split": split,
        "checkpoint": path.name,
        "weights": "ema" if use_ema else "model",
        "trained_epochs": state.get("epoch"),
        "step": state.get("step"),
        "metrics": evaluation.metrics,
        "fingerprint": data.split(split).fingerprint(),
        "figures": _figures(run, split, evaluation.arrays, data.meta),
    }
    if _generates_images(model, task):
        result["figures"] += _generative_figures(run, model, task, data, split, device)
        if samples > 0:
            quality, figures = _sample_quality(run, model, task, data, split, samples, steps)
            result["metrics"] = {**result["metrics"], **quality.pop("metrics", {})}
            result["sample_quality"] = quality
            result["figures"] += figures
    write_json(run.path / f"eval-{split}.json", {**result, "arrays": _jsonable(evaluation.arrays)})
    summary = run.summary
    summary.setdefault("eval", {})[split] = result["metrics"]
    summary.setdefault("data", {}).setdefault("fingerprints", {})[split] = result["fingerprint"]
    run.write_summary(summary)
    return result


def _figures(run: Run, split: str, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> list[str]:
    from .report import plot_confusion, plot_reliability

    figures = []
    if "confusion_matrix" in arrays:
        names = meta.get("class_names") or [str(i) for i in range(len(arrays["confusion_matrix"]))]
        figures.append(plot_confusion(arrays["confusion_matrix"], names, run.path / f"confusion-{split}.png", f"{run.id} ({split})"))
    if "calibration" in arrays:
        figures.append(plot_reliability(arrays["calibration"], run.path / f"reliability-{split}.png", f"{split} calibration"))
    return [str(f) for f in figures]


def _generative_figures(run: Run, model: nn.Module, task: Any, data: Any, split: str, device: torch.device) -> list[str]:
    """The task's own pictures of a trained generative model (a VAE's reconstructions, latent grid, traversals)."""
    if not hasattr(task, "figures"):
        return []
    batch = next(iter(data.eval_batches(split, device)))
    return [str(p) for p in task.figures(model, batch, run.path, split)]


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
    from .data.text import load_tokenizer

    run = run_ref if isinstance(run_ref, Run) else open_run(run_ref, runs_dir)
    config = run.config
    if not (run.path / "tokenizer.json").is_file():
        raise RunError(f"run {run.id} has no tokenizer: `sample` needs a language-model run.")
    if not hasattr(TASKS.get(config.task.name).factory, "generate"):
        raise RunError(f"run {run.id}: its task ({config.task.name}) does not generate text; `sample` needs a causal-lm run.")
    tokenizer = load_tokenizer(run.path / "tokenizer.json")
    task = build_task(config, {"vocab_size": tokenizer.vocab_size, "special_ids": {}})
    model, *_ = load_trained_model(run, config, task, checkpoint)
    dev = resolve_device(device or config.train.device)
    model.to(dev)
    ids = tokenizer.encode(prompt) if prompt else [0]
    context = torch.tensor([ids], dtype=torch.long, device=dev)
    generator = torch.Generator(device=dev).manual_seed(seed)
    produced: list[int] = []
    shown = ""
    for token in task.generate(model, context, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator):
        produced.append(int(token[0]))
        text = tokenizer.decode(produced)  # decode the whole tail: BPE pieces can span tokens
        if len(text) > len(shown) and not text.endswith("\ufffd"):
            yield text[len(shown):]
            shown = text


def _generates_images(model: nn.Module, task: Any) -> bool:
    return hasattr(task, "sample") or hasattr(model, "sample")


def _class_labels(model: nn.Module, n: int, label: int | None, run: Run) -> torch.Tensor | None:
    """Labels for a conditional model: ``label`` for all, else the classes in turn; None if unconditional."""
    conditional = getattr(model.config, "conditional", False)
    if label is not None and not conditional:
        raise ConfigError(f"--label: run {run.id} trained an unconditional model; sample without --label.")
    classes = getattr(model.config, "num_classes", 1)
    if label is not None and not 0 <= label < classes:
        raise ConfigError(f"--label: {label} is not a class of run {run.id} (0..{classes - 1}).")
    if not conditional:
        return None
    return torch.full((n,), label, dtype=torch.long) if label is not None else torch.arange(n) % classes


def generate_images(
    model: nn.Module, task: Any, y: torch.Tensor | None, n: int, *, steps: int | None = None, seed: int = 0,
    batch_size: int = 500, progress: bool = False,
) -> torch.Tensor:
    """``n`` images in [0, 1] (CPU) from a VAE, GAN or diffusion model, ``batch_size`` at a time; deterministic in ``seed``."""
    from .engine.progress import track

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    starts = range(0, n, batch_size)
    for start in track(starts, "generating", total=len(starts), enabled=progress):
        m = min(batch_size, n - start)
        yy = None if y is None else y[start: start + m].to(device)
        if hasattr(task, "sample"):  # the reverse process lives in the task (the model is a pure denoiser)
            images = task.sample(model, m, yy, generator=generator, steps=steps)
        else:
            images = model.sample(m, yy, generator=generator)
        chunks.append(images.float().cpu().clamp(0, 1))
    return torch.cat(chunks)


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
    from .report.plots import save_image_grid

    run = run_ref if isinstance(run_ref, Run) else open_run(run_ref, runs_dir)
    config = run.config
    task = build_task(config, {})
    model, *_ = load_trained_model(run, config, task, checkpoint)
    if not _generates_images(model, task):
        raise RunError(f"run {run.id}: its model ({config.model.name}) does not generate images.")
    if steps is not None and not hasattr(task, "sample"):
        raise ConfigError(f"--steps: only diffusion runs take sampling steps (run {run.id} is a {config.task.name} run).")
    model.to(resolve_device(device or config.train.device))
    y = _class_labels(model, n, label, run)
    images = generate_images(model, task, y, n, steps=steps, seed=seed)
    name = f"samples-{checkpoint}-seed{seed}" + (f"-label{label}" if label is not None else "") + ".png"
    nrow = model.config.num_classes if y is not None and label is None else None
    return save_image_grid(images, run.path / name, nrow=nrow)


def _pixels(split: Any, n: int, seed: int) -> torch.Tensor:
    """``n`` images of a split drawn without replacement (fixed by ``seed``), in [0, 1]."""
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    part = split.subset(index)
    images = part.images if part.images is not None else torch.stack([part.decode(f) for f in part.files])
    return images.float() / part.scale


def _sample_quality(
    run: Run, model: nn.Module, task: Any, data: Any, split: str, samples: int, steps: int | None
) -> tuple[dict[str, Any], list[str]]:
    """FD / IS / coverage of ``samples`` generated images against as many real ones of ``split``, with the
    real-train-vs-``split`` distance as calibration; a PNG grid of the first generated images."""
    from .metrics.generative import FEATURE_INPUT, load_feature_network, sample_quality
    from .report.plots import save_image_grid

    shape = (data.meta.get("in_channels"), data.meta.get("input_size"), data.meta.get("input_size"))
    y = _class_labels(model, samples, None, run)
    images = generate_images(model, task, y, samples, steps=steps, seed=0, progress=True)
    nrow = model.config.num_classes if y is not None else None
    figures = [str(save_image_grid(images[:100], run.path / f"samples-eval-{split}.png", nrow=nrow))]
    if shape != FEATURE_INPUT:
        log.info("sample-quality metrics skipped: the feature network takes %s images, this data has %s", FEATURE_INPUT, shape)
        return {}, figures
    net = load_feature_network()
    real = _pixels(data.split(split), samples, seed=1)
    reference = _pixels(data.split("train"), samples, seed=2) if split != "train" else None
    quality = sample_quality(net, images, real, reference)
    share = quality.pop("class_share")
    names = data.meta.get("class_names") or [str(i) for i in range(len(share))]
    metrics = {k: v for k, v in quality.items() if isinstance(v, (int, float))}
    return {"metrics": metrics, "class_share": dict(zip(names, share, strict=True)), "feature_network": quality["feature_network"]}, figures


# --------------------------------------------------------------------------- the run store


def open_run(ref: str | Path, runs_dir: str | Path | None = None) -> Run:
    """A run by id, unique id prefix or folder path."""
    return RunStore(runs_dir).open(ref)


def list_runs(
    runs_dir: str | Path | None = None, *, recipe: str | None = None, status: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Index rows of the runs, newest first."""
    return RunStore(runs_dir).rows(recipe=recipe, status=status, limit=limit)


def compare_runs(refs: Sequence[str | Path], runs_dir: str | Path | None = None) -> dict[str, Any]:
    """Config differences, metrics and data warnings of several runs side by side."""
    from .tracking.compare import compare

    return compare([open_run(r, runs_dir) for r in refs])
