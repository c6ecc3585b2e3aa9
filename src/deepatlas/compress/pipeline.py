"""The compression steps as runs: prune (and fine-tune) a run, quantize a run, measure a run.

Each step opens a trained run, makes a new run of the same store linked to it (:mod:`.lineage`) and
returns it; the CLI (``deepatlas compress``, ``deepatlas quantize``) is a thin layer over these::

    pruned = prune_run(run.id, 0.5, finetune_epochs=2)     # fine-tuned by the ordinary engine
    int8 = quantize_run(run.id, "static")                  # calibrated on training batches
    deepatlas.load(int8.id).predict(images)                # the int8 network, rebuilt from the run
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..build import build_task, load_trained_model, resolve_model_config
from ..config import Config
from ..data import load_dataset
from ..engine.checkpoint import save_checkpoint
from ..errors import ConfigError
from ..tracking import Run, RunStore
from . import lineage, measure
from . import prune as P
from . import quantize as Q

log = logging.getLogger(__name__)


def _open(ref: str | Path | Run, runs_dir: str | Path | None) -> Run:
    return ref if isinstance(ref, Run) else RunStore(runs_dir).open(ref)


def _parent(run: Run, checkpoint: str = "best") -> tuple[Config, Any, nn.Module, Any]:
    """(config, task, trained model in eval mode on the CPU, data bundle) of a run."""
    config = run.config
    data = load_dataset(config.data, state_dir=run.path)
    task = build_task(config, data.meta)
    model, _, _, _ = load_trained_model(run, config, task, checkpoint)
    return config, task, model.cpu().eval(), data


def _example(task: Any, data: Any) -> tuple[torch.Tensor, ...]:
    batch = next(iter(data.eval_batches("test", torch.device("cpu"))))
    return tuple(task.export_inputs(batch).args)


#: batch sizes and repeats of the latency every derived run records beside its parent's
LATENCY_BATCHES, LATENCY_REPEATS = (1, 64), 10


def latencies(parent: nn.Module, child: nn.Module, task: Any, data: Any) -> dict[str, Any]:
    """CPU milliseconds per forward pass of the derived network and of its parent at batch 1 and 64 (one thread,
    the median of ``LATENCY_REPEATS`` calls, the two timed in turn), for a run's summary; {} where the network's
    inputs are not a batch of examples (a graph)."""
    args = _example(task, data)
    if len({a.shape[0] for a in args}) != 1:
        return {}
    sizes = tuple(sorted({min(n, len(args[0])) for n in LATENCY_BATCHES}))
    times = measure.latency({"child": child.eval(), "parent": parent.eval()}, lambda n: tuple(a[:n] for a in args), sizes,
                            repeats=LATENCY_REPEATS, threads=1)
    return {"latency_ms": {str(n): times["child"][n] for n in sizes}, "parent_latency_ms": {str(n): times["parent"][n] for n in sizes}}


def costs(model: nn.Module, task: Any, data: Any, params: int | None = None) -> dict[str, Any]:
    """Footprint of ``model`` (parameters, non-zeros, sizes, FLOPs per example) for a run's summary."""
    args = tuple(a[:2] for a in _example(task, data))
    return measure.footprint(model, args, params=params).to_dict()


# --------------------------------------------------------------------------- pruning


def prune_run(
    ref: str | Path | Run, amount: float, *, method: str = "global", finetune_epochs: int = 0, rounds: int = 1,
    lr: float | None = None, runs_dir: str | Path | None = None, progress: bool | None = False,
    overrides: dict[str, Any] | None = None,
) -> list[Run]:
    """Prune a run to ``amount`` (a fraction of the weights, or with ``method=channels`` of each block's inner
    channels) in ``rounds`` rounds, each fine-tuned for ``finetune_epochs`` epochs (lr: ``lr``, default a
    tenth of the run's); one derived run per round, each the parent of the next. Returns the rounds' runs."""
    P.check_amount(amount)
    P.check_method(method)
    if rounds < 1 or finetune_epochs < 0:
        raise ConfigError(f"--rounds / --finetune-epochs: need rounds >= 1 and epochs >= 0 (got {rounds}, {finetune_epochs}).")
    if rounds > 1 and finetune_epochs == 0:
        raise ConfigError("--rounds: iterative pruning fine-tunes between rounds; set --finetune-epochs 1 or more.")
    parent = _open(ref, runs_dir)
    original = parent.summary.get("params", {}).get("total")
    out = []
    previous = 0.0
    for r, target in enumerate(P.schedule(amount, rounds), start=1):
        config, task, model, data = _parent(parent)
        before = copy.deepcopy(model)
        if method == "channels":
            # each round removes the share of the remaining channels that takes the block to the target
            step = 1.0 - (1.0 - target) / (1.0 - previous)
            model, widths = P.channels(model, step)
            options = dataclasses.replace(config.model.options, inner_widths=tuple(widths))
            config = dataclasses.replace(config, model=dataclasses.replace(config.model, options=options))
            masks = None
        else:
            masks = P.unstructured(model, target, method)
        suffix = f"prune{round(100 * amount)}{'c' if method == 'channels' else ''}" + (f"-r{r}" if rounds > 1 else "")
        details = {"method": method, "amount": round(target, 6), "round": r, "rounds": rounds, "finetune_epochs": finetune_epochs}
        params = sum(p.numel() for p in model.parameters())
        if finetune_epochs:
            child = _fine_tune(parent, config, task, model, data, suffix, details, finetune_epochs, lr, masks, progress, overrides)
            _, _, model, _ = _parent(child)
        else:
            child = lineage.create(parent, lineage.child_config(config, suffix), {"kind": "prune", **details}, data, params)
            lineage.finish(child, model, task, data)
        lineage.update(child, compression={**costs(model, task, data), "original_params": original, **latencies(before, model, task, data)})
        log.info("round %d/%d: %s (sparsity %.3f, %d parameters)", r, rounds, child.id, target, params)
        out.append(child)
        parent, previous = child, target
    return out


def _fine_tune(
    parent: Run, config: Config, task: Any, model: nn.Module, data: Any, suffix: str, details: dict[str, Any],
    epochs: int, lr: float | None, masks: dict[str, torch.Tensor] | None, progress: bool | None,
    overrides: dict[str, Any] | None,
) -> Run:
    from ..api import fit_model

    lr = lr if lr is not None else config.optim.lr / 10
    config = lineage.child_config(config, suffix, epochs=epochs, max_steps=None, init_from=None, **(overrides or {}))
    config = dataclasses.replace(
        config, optim=dataclasses.replace(config.optim, lr=lr), schedule=dataclasses.replace(config.schedule, warmup=0),
    )
    config = resolve_model_config(config, data.meta)
    child = lineage.create(parent, config, {"kind": "prune", **details, "lr": float(f"{lr:.6g}")}, data, sum(p.numel() for p in model.parameters()))
    callbacks = [P.MaskCallback(masks)] if masks is not None else []
    return fit_model(child, config, data, model.train(), task, callbacks=callbacks, progress=progress)


# --------------------------------------------------------------------------- quantization


def quantize_run(
    ref: str | Path | Run, mode: str = "static", *, calibration_batches: int = 8, qat_epochs: int = 1,
    lr: float | None = None, runs_dir: str | Path | None = None, progress: bool | None = False,
) -> Run:
    """An int8 version of a run (``dynamic``, ``static`` calibrated on ``calibration_batches`` training
    batches, or ``qat`` fine-tuned ``qat_epochs`` epochs with fake quantization), as a derived run."""
    Q.check_mode(mode)
    parent = _open(ref, runs_dir)
    config, task, model, data = _parent(parent)
    params = sum(p.numel() for p in model.parameters())
    details: dict[str, Any] = {"kind": "quantize", "mode": mode, "backend": Q.BACKEND}
    config = lineage.child_config(config, f"int8-{mode}", precision="fp32", channels_last=False, compile=False)
    state: dict[str, torch.Tensor] | None = None
    if mode == "dynamic":
        quantized = Q.dynamic(model)
    else:
        example = Q.example_inputs(data.meta)
        prepared = Q.prepare(model, example, qat=mode == "qat")
        if mode == "static":
            seen = Q.calibrate(prepared, ((b[0],) for b in data.train_batches(0, config.train.seed, torch.device("cpu"))), calibration_batches)
            details["calibration_examples"] = seen
        else:
            prepared = _qat(parent, config, task, prepared, data, qat_epochs, lr, progress)
            details["qat_epochs"] = qat_epochs
        state = Q.observer_state(prepared)
        quantized = Q.convert(prepared)
    child = lineage.create(parent, config, details, data, params)
    save_checkpoint(child.checkpoint("best"), {"model": {k: v.contiguous() for k, v in model.state_dict().items()}, "ema": None, "state": {}},
                    sidecar=False)
    if state is not None:
        save_checkpoint(child.path / Q.FILE, {"observers": state}, sidecar=False)
    lineage.record(child, quantized, task, data)
    lineage.update(child, compression={**costs(model, task, data, params), **_int8_size(quantized), **latencies(model, quantized, task, data)})
    return child


def _int8_size(quantized: nn.Module) -> dict[str, int]:
    import gzip

    raw = measure.state_bytes(quantized)
    return {"size_bytes": len(raw), "size_gzip_bytes": len(gzip.compress(raw, compresslevel=6))}


def _qat(parent: Run, config: Config, task: Any, prepared: nn.Module, data: Any, epochs: int, lr: float | None, progress: bool | None) -> nn.Module:
    """Fine-tune the fake-quantized network with the task's loss (a plain loop: its checkpoints would not load
    into the float model the engine rebuilds), SGD at a tenth of the run's lr, cosine to zero."""
    lr = lr if lr is not None else config.optim.lr / 10
    optimizer = torch.optim.SGD(prepared.parameters(), lr=lr, momentum=0.9, weight_decay=config.optim.weight_decay)
    steps = epochs * data.num_batches("train")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    prepared.train()
    with Q._ao():
        for epoch in range(epochs):
            for batch in data.train_batches(epoch, config.train.seed, torch.device("cpu")):
                out = task.training_step(prepared, batch, "main")
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                optimizer.step()
                scheduler.step()
            log.info("QAT epoch %d/%d: loss %.4f", epoch + 1, epochs, float(out.loss.detach()))
    return prepared.eval()


__all__ = ["costs", "prune_run", "quantize_run"]
