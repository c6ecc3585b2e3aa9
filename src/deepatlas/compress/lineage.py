"""Every compressed model is a run of the run store, linked to the run it came from.

A derived run is an ordinary run folder (config, summary, checkpoints, preprocessing, evaluations) whose
summary carries ``lineage``: ``{"parent": <run id>, "kind": "prune" | "quantize" | "distillation", ...}``
with what was done (sparsity, mode, rounds...). ``chain(run)`` follows the links back to the original;
``deepatlas runs compare RUN --lineage`` shows the whole chain side by side. A derived run without
fine-tuning is written here (its weights as ``best.safetensors`` and its validation and test metrics); one
that fine-tunes is trained by the ordinary engine (``deepatlas.api.fit_model``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..engine.checkpoint import save_checkpoint
from ..tracking import Run, RunStore, environment

log = logging.getLogger(__name__)


def child_config(parent: Config, suffix: str, **train: Any) -> Config:
    """The parent's config, its recipe name suffixed (the run id says what was done), ``train`` keys replaced."""
    recipe = f"{parent.recipe or parent.model.name}-{suffix}"
    return dataclasses.replace(parent, recipe=recipe, train=dataclasses.replace(parent.train, **train))


def create(parent: Run, config: Config, lineage: Mapping[str, Any], data: Any, params: int, extra: Mapping[str, Any] | None = None) -> Run:
    """A new run in the parent's store for a model derived from ``parent``, its summary linked to it."""
    ps = parent.summary
    summary = {
        "status": "created",
        "model": config.model.name,
        "dataset": config.data.name,
        "task": config.task.name,
        "params": {"total": params, "trainable": params},
        "flops": ps.get("flops"),
        "data": {k: v for k, v in (ps.get("data") or {}).items() if k != "fingerprints"}
        | {"fingerprints": {k: v for k, v in ((ps.get("data") or {}).get("fingerprints") or {}).items() if k in ("train", "val")}},
        "environment": environment(torch.device("cpu")),
        "lineage": {"parent": parent.id, **lineage},
        **(extra or {}),
    }
    store = parent.store or RunStore(parent.path.parent)
    run = store.create(config, summary)
    data.save(run.path)
    return run


def finish(run: Run, model: nn.Module, task: Any, data: Any, extra: Mapping[str, Any] | None = None) -> Run:
    """Store ``model``'s weights as the run's best checkpoint and record its validation and test metrics."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(run.checkpoint("best"), {"model": state, "ema": None, "state": {}}, sidecar=False)
    return record(run, model, task, data, extra)


def record(run: Run, model: nn.Module, task: Any, data: Any, extra: Mapping[str, Any] | None = None) -> Run:
    """Evaluate ``model`` (as it runs: a quantized network too) on val and test; completed summary."""
    from .measure import evaluate

    summary = run.summary
    monitor = f"val/{task.monitor[0]}"
    val = evaluate(model, task, data, "val")
    test = evaluate(model, task, data, "test")
    summary.update({
        "status": "completed", "final": {f"val/{k}": v for k, v in val.items()},
        "best": {"metric": monitor, "value": val.get(task.monitor[0]), "epoch": None},
        **(extra or {}),
    })
    summary.setdefault("eval", {})["test"] = test
    summary.setdefault("data", {}).setdefault("fingerprints", {})["test"] = data.split("test").fingerprint()
    run.write_summary(summary)
    return run


def update(run: Run, **fields: Any) -> None:
    """Merge ``fields`` into the run's summary (e.g. measurements taken after training)."""
    summary = run.summary
    for key, value in fields.items():
        if isinstance(value, Mapping) and isinstance(summary.get(key), Mapping):
            summary[key] = {**summary[key], **value}
        else:
            summary[key] = value
    run.write_summary(summary)


def chain(run: Run) -> list[Run]:
    """The run and the runs it derives from, the original first (a missing parent ends the chain)."""
    from ..errors import RunError

    runs, seen = [run], {run.id}
    store = run.store or RunStore(run.path.parent)
    while (parent := (runs[0].summary.get("lineage") or {}).get("parent")) and parent not in seen:
        try:
            runs.insert(0, store.open(parent))
        except RunError:
            log.warning("run %s derives from %s, which is not in %s", runs[0].id, parent, store.root)
            break
        seen.add(parent)
    return runs


def expand(runs: Sequence[Run]) -> list[Run]:
    """Each run preceded by its ancestors, each run once."""
    out: list[Run] = []
    for run in runs:
        for r in chain(run):
            if r.id not in {o.id for o in out}:
                out.append(r)
    return out


__all__ = ["chain", "child_config", "create", "expand", "finish", "record", "update"]
