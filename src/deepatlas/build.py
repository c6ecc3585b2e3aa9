"""From a resolved config to the objects of a run: the one builder that train, resume, evaluate and load share.

A recipe names a model, a task and a dataset; the dataset's ``meta`` fills the model's
data-bound keys (classes, channels, input size, vocabulary). ``build`` returns the model,
the task and the resolved config for a data bundle; ``load_weights`` puts a checkpoint's
weights (EMA weights when kept) into a freshly built model.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from . import schema
from .config import Config
from .engine.checkpoint import load_checkpoint, save_checkpoint
from .errors import CheckpointError, ConfigError, RunError
from .models.base import DATA_BOUND_FIELDS, count_parameters
from .registry import MODELS, TASKS
from .tasks.base import Task
from .tracking import Run


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        want = tuple(want) if isinstance(want, list) else want  # JSON keeps tuples as lists
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
    return _with_model_options(config, updates)


def _with_model_options(config: Config, updates: Mapping[str, Any]) -> Config:
    """``config`` with its model options updated (each value checked as a recipe key is)."""
    options = schema.replace(config.model.options, updates, "model")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, options=options))


# Model keys bound to the run's length: left null, they take the run's planned optimizer steps
# (BYOL's tau schedule reaches 1 as training ends), written into the run's config so that
# evaluation and resume see the number the run trained with.
RUN_BOUND_FIELDS = ("tau_steps",)


def bind_run_length(config: Config, num_batches: int) -> Config:
    """Fill the null :data:`RUN_BOUND_FIELDS` of the model with the optimizer steps of this run."""
    from .engine.trainer import planned_steps

    options = config.model.options
    updates = {key: planned_steps(config.train, num_batches) for key in RUN_BOUND_FIELDS
               if hasattr(options, key) and getattr(options, key) is None}
    return _with_model_options(config, updates) if updates else config


def build_model(config: Config) -> nn.Module:
    """The model of a (resolved) config, freshly initialised."""
    return MODELS.get(config.model.name, "model.name").factory(config.model.options)


def free_memory() -> int | None:
    """Bytes of host memory available for new allocations (Linux MemAvailable, counting reclaimable
    cache; elsewhere the physical memory); None where the system does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_size(config: Config, available: int | None = None) -> None:
    """Refuse a model whose fp32 weights cannot fit in ``available`` bytes (default: free host memory).

    The parameters are counted on the ``meta`` device, which allocates nothing, so that
    ``model.n_embd=10000000000`` is a one-line error naming the key instead of an
    allocation failure (or the machine swapping) while the model is built.
    """
    available = free_memory() if available is None else available
    try:
        with torch.device("meta"):
            params: int | None = count_parameters(build_model(config))
    except Exception as exc:  # best effort: the real build in build() raises what matters
        if "overflow" not in str(exc):
            return  # a model the meta device cannot build (e.g. an op without a meta kernel) is checked when built
        params = None  # more elements than a tensor can index
    if params is not None and (available is None or 4 * params <= available):
        return
    if params is None:
        raise _too_large(config, "has more parameters than a tensor can index")
    free = f"{available / 1e9:.3g} GB free" if available is not None else "the free memory"
    raise _too_large(config, f"has {params:.3g} parameters ({4 * params / 1e9:.3g} GB of fp32 weights), more than {free}")


def _changed_options(config: Config) -> list[str]:
    """The size keys the recipe set above the model's preset (integers: widths, depths; data-bound keys excluded)."""
    preset, options = MODELS.get(config.model.name, "model.name").config, config.model.options

    def grew(name: str) -> bool:
        have, base = getattr(options, name), getattr(preset, name)
        return isinstance(have, int) and isinstance(base, int) and not isinstance(have, bool) and have > base

    return [f.name for f in dataclasses.fields(options) if f.name not in DATA_BOUND_FIELDS and grew(f.name)]


def _too_large(config: Config, what: str) -> ConfigError:
    """One line naming the keys set away from the preset and how to shrink the model."""
    preset, options, changed = MODELS.get(config.model.name, "model.name").config, config.model.options, _changed_options(config)
    used = ", ".join(f"model.{k}={getattr(options, k)}" for k in changed) or "its preset options"
    fix = " or ".join(f"model.{k} (preset: {getattr(preset, k)})" for k in changed)
    return ConfigError(f"model: {config.model.name} with {used} {what}; " + (f"reduce {fix}." if fix else "pick a smaller model.name."))


def build_task(config: Config, meta: Mapping[str, Any]) -> Task:
    return TASKS.get(config.task.name, "task.name").factory(config.task.options, meta)


class Built(NamedTuple):
    config: Config  # with the data-bound model keys resolved
    task: Task
    model: nn.Module  # freshly initialised from config.train.seed


def build(config: Config, meta: Mapping[str, Any]) -> Built:
    """The resolved config, the task and the seeded, freshly initialised model for data with ``meta``."""
    task = build_task(config, meta)
    config = resolve_model_config(config, {**meta, **task.model_meta()})
    if config.train.monitor:  # an unknown metric fails here, before a run folder exists, not after epoch 1
        task.direction(config.train.monitor, task.config)
    check_model_size(config)
    seed_everything(config.train.seed)
    try:
        model = build_model(config)
    except MemoryError:
        raise _too_large(config, "does not fit in memory") from None
    except RuntimeError as exc:  # torch's allocators raise RuntimeError ("can't allocate memory", "out of memory")
        if "allocat" not in str(exc) and "out of memory" not in str(exc):
            raise
        raise _too_large(config, "does not fit in memory") from None
    task.check_model(model)
    return Built(config, task, model)


def load_weights(model: nn.Module, task: Task, path: Path) -> tuple[dict[str, Any], bool]:
    """Load checkpoint ``path`` into ``model`` (EMA weights when the run kept them); (checkpoint, used EMA)."""
    ckpt = load_checkpoint(path)
    use_ema = ckpt.get("ema") is not None
    try:
        model.load_state_dict(ckpt["model"])
        if use_ema:  # the averaged module: the whole model, or a part of it (a GAN's generator)
            task.ema_target(model).load_state_dict(ckpt["ema"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not fit the run's model ({exc}).") from None
    return ckpt, use_ema


def run_task(run: Run) -> Task:
    """The task of a trained run, built from its config and the data meta it recorded (no dataset needed)."""
    return build_task(run.config, (run.summary.get("data") or {}).get("meta") or {})


def load_trained_model(run: Run, config: Config, task: Task, checkpoint: str = "best") -> tuple[nn.Module, dict[str, Any], Path, bool]:
    """The run's model with the weights of ``checkpoint`` (EMA weights when kept), in eval mode."""
    path = checkpoint_path(run, checkpoint)
    model = build_model(config)
    ckpt, use_ema = load_weights(model, task, path)
    return derived_network(run, model).eval(), ckpt, path, use_ema


def derived_network(run: Run, model: nn.Module) -> nn.Module:
    """The network a run measured: ``model`` itself, or for a quantized run (``lineage.kind`` quantize) the
    int8 network rebuilt from ``model``'s float weights and the run's saved observers (CPU only)."""
    if (run.summary.get("lineage") or {}).get("kind") != "quantize":
        return model
    from .compress.quantize import load_quantized

    return load_quantized(run, model)


CALIBRATION = "calibration.safetensors"


def calibrate(task: Task, model: nn.Module, data: Any, device: torch.device, folder: Path | None) -> None:
    """Fit the task's post-training state (``Task.calibrate``) on the trained model; keep it in ``folder`` (None: in memory)."""
    if not task.calibrates:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            state = task.calibrate(model, data, device)
    finally:
        model.train(was_training)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if folder is not None:
        save_checkpoint(Path(folder) / CALIBRATION, {"calibration": state}, sidecar=False)
    task.load_calibration(state)


def save_calibration_state(task: Task, folder: Path) -> None:
    """Write the calibration a task holds (``Task.calibration_state``) into ``folder`` (an export)."""
    save_checkpoint(Path(folder) / CALIBRATION, {"calibration": task.calibration_state()}, sidecar=False)


def restore_calibration(task: Task, folder: Path) -> None:
    """Give the task the state ``calibrate`` saved in ``folder``; a task that needs it and finds none is an error."""
    if not task.calibrates:
        return
    path = Path(folder) / CALIBRATION
    if not path.is_file():
        raise RunError(f"{folder}: no {CALIBRATION} (the run did not finish training; resume it to calibrate).")
    task.load_calibration(load_checkpoint(path)["calibration"])


def checkpoint_path(run: Run, checkpoint: str) -> Path:
    """``best`` (falls back to ``last``, e.g. a run with no validation split) or ``last``."""
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"--checkpoint: {checkpoint!r} is not allowed (allowed: best, last).")
    path = run.checkpoint(checkpoint)
    if checkpoint == "best" and not path.is_file():
        path = run.checkpoint("last")
    if not path.is_file():
        raise RunError(f"run {run.id} has no checkpoint ({path}); it has not finished an epoch yet.")
    return path
