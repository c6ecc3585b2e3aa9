"""Objective values of a finished run: validation metrics and the costs of the trained model.

A metric's value is its best over the run's validations (for the monitored metric exactly the
summary's ``best``, the epoch whose weights ``best.safetensors`` keeps); ``params`` is the parameter
count, ``flops`` the forward FLOPs per example (``summary.json``), ``latency_ms`` the median time of
a forward pass on one validation example on this machine, measured after warm-up.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, suggest
from .callbacks import MetricNotFound
from .space import Objective

if TYPE_CHECKING:
    from ..tracking import Run



def objective_values(run: Run, objectives: Sequence[Objective]) -> list[float]:
    """The objective values of a finished run: a metric's best validation value (the summary's ``best``
    for the monitored metric), the parameter count, forward FLOPs per example or measured latency."""
    summary = run.summary
    out = []
    for objective in objectives:
        if objective.name == "params":
            value = (summary.get("params") or {}).get("total")
        elif objective.name == "flops":
            value = (summary.get("flops") or {}).get("forward_per_sample")
            if value is None:
                raise ValueError(f"run {run.id}: its FLOPs could not be counted (see its log)")
        elif objective.name == "latency_ms":
            value = measure_latency(run)
        else:
            value = _best_metric(run, summary, objective)
        out.append(float(value))
    return out


def _best_metric(run: Run, summary: Mapping[str, Any], objective: Objective) -> float:
    best = summary.get("best") or {}
    if best.get("metric") == objective.name and best.get("value") is not None:
        return float(best["value"])
    seen = [row[objective.name] for row in run.metrics("epoch") if isinstance(row.get(objective.name), (int, float))]
    if not seen:
        known = sorted({k for row in run.metrics("epoch") for k in row if k.startswith("val/")})
        raise MetricNotFound(
            f"search: {objective.name!r} is not a validation metric of this task (there are: {', '.join(known) or 'none'})."
            + suggest(objective.name, known)
        )
    finite = [v for v in seen if math.isfinite(v)] or seen
    return max(finite) if objective.direction == "maximize" else min(finite)


def measure_latency(run: Run, repeats: int = 25) -> float:
    """Median milliseconds of a forward pass of the run's trained model on one validation example,
    on the run's device, after warm-up."""
    import torch

    from .. import api
    from ..data import load_dataset
    from ..engine import resolve_device

    config = run.config
    data = load_dataset(config.data, state_dir=run.path)
    task = api.build_task(config, data.meta)
    model, *_ = api.load_trained_model(run, config, task, "best")
    device = resolve_device(config.train.device)
    model.to(device)
    batch = next(iter(data.eval_batches("val", device)), None)
    inputs = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(inputs, torch.Tensor):
        raise ConfigError(
            f"search.objectives: latency_ms needs batches of (inputs, targets); {config.task.name} batches are "
            f"{type(inputs).__name__}."
        )
    x = inputs[:1]
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= 3:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
