"""The training loop: one generic loop for every family.

Everything family-specific goes through the :class:`~deepatlas.tasks.Task`
(phases, losses, validation statistics); everything else lives here:
optimizers and schedules, mixed precision, gradient accumulation and clipping,
EMA, validation, best-checkpoint tracking, early stopping, atomic checkpoints
with exact resume, non-finite-loss handling and Ctrl-C / SIGTERM.

The order of a run: ``fit`` loops over epochs; an epoch is a sequence of
micro-batches; every ``grad_accum`` micro-batches (or at the epoch's end) each
phase's optimizer steps; at each epoch's end the model is validated and a
checkpoint is written. All randomness is either derived from (seed, epoch,
batch) or saved in checkpoints, so on the CPU a resumed run ends with the same
weights, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data.bundle import DataBundle
from ..errors import CheckpointError, TrainingError
from ..io import remove_stale_temps
from ..tasks.base import Task, accumulate
from . import distributed
from .callbacks import Callback, callback_name
from .checkpoint import load_checkpoint, save_checkpoint
from .clock import ComputeClock
from .device import (
    auto_channels_last,
    auto_precision,
    autocast,
    autocast_dtype,
    batch_flops,
    configure_threads,
    resolve_device,
    set_threads,
)
from .ema import EMA
from .optim import FineTuning, add_l1, build_optimizer, match_state_layout
from .schedule import LRSchedule
from .signals import stop_signals

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainState:
    """Counters that, with the weights, optimizer and RNG states, define where a run is."""

    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    step: int = 0  # optimizer steps taken
    samples: int = 0  # training examples seen
    best_value: float | None = None
    best_epoch: int | None = None
    bad_evals: int = 0  # validations since the last improvement
    last_val: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FitResult:
    status: str  # completed, failed, interrupted or pruned
    reason: str
    state: TrainState
    best: dict[str, Any]


class NonFiniteLoss(TrainingError):
    pass


class _Averager:
    """Running means of detached log tensors, per key; values are read (synchronised) only when asked."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        for key, value in logs.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def mean(self) -> dict[str, float]:
        """Means per key; with several processes, of every rank's values (each rank logs the same keys)."""
        if not self.sums:
            return {}
        means = torch.stack([v / self.counts[k] for k, v in self.sums.items()])
        if distributed.world().active:
            means = distributed.mean_over_ranks(means)
        return dict(zip(self.sums, means.tolist(), strict=True))

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {k: torch.tensor(v, dtype=torch.float32) for k, v in state["sums"].items()}
        self.counts = dict(state["counts"])


def planned_steps(train: Any, num_batches: int) -> int:
    """The optimizer steps a run of ``train`` (a TrainConfig) makes over ``num_batches`` training batches an epoch."""
    return train.max_steps or train.epochs * math.ceil(num_batches / train.grad_accum)


class Trainer:
    """Trains ``model`` on ``data`` for ``task`` as ``config`` says."""

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        data: DataBundle,
        config: Config,
        *,
        checkpoint_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        c = self.train_config = config.train
        self.config, self.task, self.data = config, task, data
        # The clock comes first, so that every other callback reads current totals.
        self.clock = ComputeClock()
        self.callbacks = [self.clock, *callbacks]
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.world = distributed.world()
        self.device = distributed.device_for(resolve_device(c.device), self.world)
        self.model = model.to(self.device)
        self._flops: list[float | None] = []  # the work per micro-batch, counted once on demand
        self.precision, why = (c.precision, "train.precision") if c.precision != "auto" else auto_precision(
            self.device, self._batch_flops, task.low_precision_ok and config.optim.name != "lbfgs", self.model)
        self.dtype = autocast_dtype(self.precision, self.device)
        log.info("precision: %s (%s)", self.precision, why)
        self.tuning = FineTuning(self.model, config.optim)
        self.tuning.freeze()
        if self.tuning.groups and self.world.active:
            raise TrainingError("optim.unfreeze: gradual unfreezing changes the trained parameters between epochs, "
                                "which DDP/FSDP cannot follow; train in one process or use optim.freeze.")
        if config.optim.name == "lbfgs" and self.world.active:  # each rank's line search would take its own path
            raise TrainingError("optim.name=lbfgs: its line search evaluates each rank's own loss, so the ranks would "
                                "diverge; train in one process (L-BFGS suits small full-batch fits).")
        self.threads = configure_threads(c.threads, c.deterministic, self._batch_flops)
        self.channels_last = c.channels_last if c.channels_last is not None else auto_channels_last(self.model, self.dtype)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        compiled = torch.compile(self.model) if c.compile else self.model
        self._synced: nn.Module | None = None  # DDP / FSDP: the module whose gradients are all-reduced
        if self.world.active:
            if c.strategy == "fsdp" and c.ema_decay:
                raise TrainingError("train.ema_decay: not with train.strategy=fsdp (the average would need the full weights on every rank).")
            self._synced, self.forward_model = distributed.wrap(compiled, self.device, c.strategy)
        else:
            self.forward_model = compiled
        self._eval_forward = compiled  # validation: every rank holds the weights (DDP) and sees its own batches
        self.params = task.parameters(self.model)
        names = {id(p): name for name, p in self.model.named_parameters()}
        fusable = not (self.world.active and c.strategy == "fsdp")  # FSDP's sharded parameters: torch's foreach kernels
        self.optimizers = {name: build_optimizer(ps, config.optim, names, fusable) for name, ps in self.params.items()}
        for name, scale in task.lr_scales().items():
            for group in self.optimizers[name].param_groups:
                group["lr_scale"] = scale * group.get("lr_scale", 1.0)  # times optim.lr_groups' factor
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.ema = EMA(task.ema_target(self.model), c.ema_decay) if c.ema_decay else None
        self.num_batches = data.num_batches("train")
        self.steps_per_epoch = math.ceil(self.num_batches / c.grad_accum)
        self.total_steps = planned_steps(c, self.num_batches)
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.schedule = LRSchedule(config.schedule, config.optim.lr, self.steps_per_epoch, self.total_steps)
        self.monitor, self.mode = self._monitor(c.monitor), c.mode  # mode 'auto' is resolved when fit starts
        self.state = TrainState()
        self._logs, self._epoch_logs = _Averager(), _Averager()
        self._stop: tuple[str, str] | None = None
        self._signal: str | None = None
        self._session_start = (time.perf_counter(), 0)
        self._last_log = (time.perf_counter(), 0)

    def _batch_flops(self) -> float | None:
        """The work of one training micro-batch, which sets the default CPU thread count and precision (None: not
        on the CPU, or not countable); counted once."""
        if self.device.type != "cpu":
            return None
        if not self._flops:
            batch = next(iter(self.data.train_batches(0, self.train_config.seed, self.device)), None)
            self._flops.append(None if batch is None else batch_flops(self.model, self.task, batch))
        return self._flops[0]

    # ----------------------------------------------------------------- the loop

    def fit(self, resume_from: str | Path | None = None) -> FitResult:
        """Train until the epochs or steps are done, early stopping, a signal or a failure."""
        if resume_from is not None:
            if self.world.main:
                self._remove_stale_temps()
            self.load(resume_from)
        self._stop = None
        self._session_start = self._last_log = (time.perf_counter(), self.state.samples)
        self._session_step = self.state.step
        self.schedule.apply(self.optimizers.values(), self.state.step)
        self._emit("on_fit_start")
        status, reason = "completed", "finished all epochs"
        try:
            self.mode = self._resolve_mode()  # an undeclared metric fails the run, like any error in it
            with self._signals():
                while self._stop is None and self.state.epoch < self.epochs:
                    self._run_epoch()
                    if self._stop is not None and self._stop[0] == "interrupted":
                        self.save("last")
                        break
                    self._end_epoch(partial=self.state.batch_in_epoch < self.num_batches)
            if self._stop is not None:
                status, reason = self._stop
        except NonFiniteLoss as exc:
            status, reason = "failed", str(exc)
            log.error("%s", reason)
        except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint now, the last one stays valid
            status, reason = "interrupted", "stopped at once by a second signal; resume restarts from the last checkpoint"
        except Exception as exc:
            lost = self.world.active and ("gloo" in str(exc) or "NCCL" in str(exc) or type(exc).__name__ == "DistBackendError")
            prefix = "another process of this distributed run failed or was killed (see its log): " if lost else ""
            self._finish("failed", f"{prefix}{type(exc).__name__}: {exc}")
            raise
        return self._finish(status, reason)

    def _finish(self, status: str, reason: str) -> FitResult:
        result = FitResult(status, reason, self.state, self.best_summary())
        self._emit("on_fit_end", result)
        return result

    def _run_epoch(self) -> None:
        s, accum = self.state, self.train_config.grad_accum
        self._emit("on_epoch_start", s.epoch)
        if self.tuning.groups:
            self.tuning.set_epoch(s.epoch)
        self.model.train()
        for batch in self.data.train_batches(s.epoch, self.train_config.seed, self.device, start=s.batch_in_epoch):
            window_start = s.batch_in_epoch - s.batch_in_epoch % accum
            window = min(accum, self.num_batches - window_start)
            boundary = s.batch_in_epoch + 1 == window_start + window
            n = self.task.batch_size(batch)
            if self.world.active:  # the global batch, as one process sees it; this rank keeps its slice
                batch = distributed.shard_batch(batch, n, self.world)
            self._train_batch(batch, window, boundary)
            s.batch_in_epoch += 1
            s.samples += n
            if boundary:
                self._after_step()
                if self._stop is not None:
                    return

    def _train_batch(self, batch: Any, window: int, boundary: bool) -> None:
        """Forward and backward of every phase; optimizer steps at accumulation boundaries."""
        for phase in self.task.phases(self.state.step):
            if isinstance(self.optimizers[phase], torch.optim.LBFGS):
                out = self._closure_step(batch, phase)
            else:
                with distributed.no_sync(self._synced, not boundary):
                    with self._only_phase_params(phase), autocast(self.device, self.dtype):
                        out = self.task.training_step(self.forward_model, batch, phase)
                    if not torch.isfinite(out.loss.detach()):
                        raise NonFiniteLoss(self._nan_message(out.loss, phase))
                    self.scaler.scale(out.loss / window).backward()
                if boundary:
                    self._optimizer_step(phase)
            logs = out.logs if len(self.optimizers) == 1 else {f"{phase}/{k}": v for k, v in out.logs.items()}
            self._logs.add(dict(logs))
            self._epoch_logs.add(dict(logs))

    def _closure_step(self, batch: Any, phase: str) -> Any:
        """L-BFGS: the optimizer calls the closure (loss and gradients on this batch) as its line search needs;
        the logs are those of the first evaluation, the loss before the step."""
        opt, outs = self.optimizers[phase], []

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with self._only_phase_params(phase):
                out = self.task.training_step(self.forward_model, batch, phase)
            if not torch.isfinite(out.loss.detach()):
                raise NonFiniteLoss(self._nan_message(out.loss, phase))
            out.loss.backward()
            outs.append(out)
            return out.loss

        opt.step(closure)
        opt.zero_grad(set_to_none=True)
        return outs[0]

    def _optimizer_step(self, phase: str) -> None:
        opt = self.optimizers[phase]
        l1 = self.config.optim.l1
        if self.train_config.grad_clip is not None or l1:
            self.scaler.unscale_(opt)
        if l1:  # the penalty's subgradient, part of the gradient that clipping sees
            add_l1(self.params[phase], l1)
        if self.train_config.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params[phase], self.train_config.grad_clip)
            self._logs.add({"grad_norm" if len(self.optimizers) == 1 else f"{phase}/grad_norm": norm})
        self.scaler.step(opt)
        opt.zero_grad(set_to_none=True)

    def _after_step(self) -> None:
        s, c = self.state, self.train_config
        self.scaler.update()
        s.step += 1
        if self.ema is not None:
            self.ema.update(self.task.ema_target(self.model))
        self.schedule.apply(self.optimizers.values(), s.step)
        self._emit("on_train_step_end")
        if s.step % c.log_every == 0:
            self._emit("on_log", self._flush_logs())
        if c.checkpoint_every and s.step % c.checkpoint_every == 0:
            self.save("last")
        if c.max_steps is not None and s.step >= c.max_steps:
            self.request_stop("completed", f"reached max_steps={c.max_steps}")
        if self._signal is not None:
            self.request_stop("interrupted", f"stopped by {self._signal}; resume with `deepatlas train --resume`")
        if self.world.active and distributed.agree(self._stop is not None):
            self._agree_on_stop()

    def _agree_on_stop(self) -> None:
        """Some rank stops after this step (a signal, max_steps, a callback on rank 0): every rank stops the same
        way, an interruption first, else rank 0's reason."""
        stops = [stop for stop in distributed.gather(self._stop) if stop is not None]
        self._stop = next((stop for stop in stops if stop[0] == "interrupted"), stops[0])

    def _end_epoch(self, partial: bool) -> None:
        """Validate (when due), track the best checkpoint, early-stop, checkpoint."""
        s, c = self.state, self.train_config
        metrics: dict[str, Any] = {"epoch": s.epoch + 1, "step": s.step}
        metrics.update({f"train/{k}": v for k, v in self._epoch_logs.mean().items()})
        due = (s.epoch + 1) % c.eval_every == 0 or s.epoch + 1 == self.epochs or partial
        due = due and self.data.num_batches("val") > 0  # no validation split: nothing to monitor
        if due:
            val = {f"val/{k}": v for k, v in self.validate("val").items()}
            s.last_val = val
            metrics.update(val)
            self._update_best(val)
            self._emit("on_validation_end", val)
        if not partial:
            s.epoch, s.batch_in_epoch = s.epoch + 1, 0
            self._epoch_logs = _Averager()
        self._emit("on_epoch_end", metrics)
        if self.world.active and distributed.agree(self._stop is not None):  # e.g. a search pruner on rank 0
            self._agree_on_stop()
        self.save("last")

    # ----------------------------------------------------------------- validation and the monitor

    @property
    def eval_model(self) -> nn.Module:
        """The EMA weights when EMA is on (and covers the whole model), else the trained model."""
        if self.ema is not None and self.task.ema_target(self.model) is self.model:
            return self.ema.module
        return self._eval_forward if self.world.active and self.train_config.strategy == "ddp" else self.forward_model

    def validate(self, split: str = "val") -> dict[str, float]:
        batches = self.data.eval_batches(split, self.device)
        if self.world.active and self.train_config.strategy == "ddp":  # batches dealt round-robin, statistics combined
            with autocast(self.device, self.dtype):
                totals = accumulate(self.task, self.eval_model, distributed.round_robin(batches, self.world))
            return self.task.reduce(distributed.combine_totals(totals))
        with autocast(self.device, self.dtype):
            totals = accumulate(self.task, self.eval_model, batches)
        return self.task.reduce(totals)

    def _monitor(self, name: str | None) -> str:
        name = name or self.task.monitor[0]
        return name if name.startswith("val/") else f"val/{name}"

    def _resolve_mode(self) -> str:
        """The monitored metric's direction: the task declares it (``Task.monitor``, ``Task.direction``)."""
        default_name, default_mode = self.task.monitor
        if self.mode != "auto":
            return self.mode
        bare = self.monitor.split("/", 1)[1]
        return default_mode if bare == default_name else self.task.direction(bare, self.task.config)

    def _update_best(self, val: dict[str, float]) -> None:
        s, c = self.state, self.train_config
        if self.monitor not in val:
            raise TrainingError(
                f"train.monitor: {self.monitor!r} is not a validation metric (there are: {', '.join(sorted(val))})."
            )
        value = val[self.monitor]
        sign = 1.0 if self.mode == "max" else -1.0
        if s.best_value is None or sign * (value - s.best_value) > c.min_delta:
            s.best_value, s.best_epoch, s.bad_evals = value, s.epoch + 1, 0
            self.save("best")
        else:
            s.bad_evals += 1
            if c.early_stopping is not None and s.bad_evals >= c.early_stopping:
                self.request_stop(
                    "completed",
                    f"early stopping: {self.monitor} did not improve for {s.bad_evals} validations "
                    f"(best {s.best_value:.4f} at epoch {s.best_epoch})",
                )

    def best_summary(self) -> dict[str, Any]:
        s = self.state
        return {"metric": self.monitor, "mode": self.mode, "value": s.best_value, "epoch": s.best_epoch}

    # ----------------------------------------------------------------- control

    def request_stop(self, status: str, reason: str) -> None:
        """Stop after the current step: ``interrupted`` saves and leaves; others validate first."""
        if self._stop is None or status == "interrupted":
            self._stop = (status, reason)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """First Ctrl-C / SIGTERM: finish the step, checkpoint, stop. Second: stop at once."""

        def first(name: str) -> None:
            self._signal = name
            log.warning("%s: saving a checkpoint after this step (send again to stop at once)", name)

        try:
            with stop_signals(first, lambda: self._signal is not None):
                yield
        finally:
            self._signal = None

    @contextlib.contextmanager
    def _only_phase_params(self, phase: str) -> Iterator[None]:
        """With several optimizers, only the stepping phase's parameters collect gradients."""
        if len(self.optimizers) == 1:
            yield
            return
        mine = {id(p) for p in self.params[phase]}
        others = [p for name, ps in self.params.items() if name != phase for p in ps if id(p) not in mine]
        before = [p.requires_grad for p in others]  # a frozen parameter (optim.freeze, unfreeze) stays frozen
        for p in others:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, wanted in zip(others, before, strict=True):
                p.requires_grad_(wanted)

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def _flush_logs(self) -> dict[str, float]:
        now = time.perf_counter()
        logs = self._logs.mean()
        self._logs = _Averager()
        t0, samples0 = self._last_log
        logs["lr"] = self.schedule.lr(self.state.step)
        logs["samples_per_s"] = (self.state.samples - samples0) / max(now - t0, 1e-9)
        done = self.state.step - self._session_step
        logs["eta_s"] = (now - self._session_start[0]) / max(done, 1) * (self.total_steps - self.state.step)
        self._last_log = (now, self.state.samples)
        return logs

    def _nan_message(self, loss: torch.Tensor, phase: str) -> str:
        s = self.state
        where = f"optimizer step {s.step + 1} (epoch {s.epoch + 1}, batch {s.batch_in_epoch + 1}"
        where += f", phase {phase})" if len(self.optimizers) > 1 else ")"
        kept = "; the last good checkpoint is kept" if self.checkpoint_dir else ""
        return (
            f"the training loss became {float(loss.detach())} at {where}{kept}. "
            "Try a lower optim.lr, train.grad_clip=1.0, or train.precision=fp32."
        )

    # ----------------------------------------------------------------- checkpoints

    def save(self, kind: str = "last") -> Path | None:
        """Write the ``last`` (full, resumable) or ``best`` (weights) checkpoint."""
        if self.checkpoint_dir is None:
            return None
        ranks = None
        if self.world.active and kind == "last":  # what differs between ranks: the RNG and the task's carried state
            ranks = distributed.gather({"rng": _rng_state(), "task": self.task.state_dict()})
        weights = self._full_state_dict()
        optimizers = self._optimizer_states() if kind == "last" else None
        if not self.world.main:  # rank 0 alone writes
            return None
        payload: dict[str, Any] = {
            "model": weights,
            "ema": self.ema.state_dict() if self.ema else None,
            "state": dataclasses.asdict(self.state),
        }
        if kind == "last":
            payload.update(
                optimizers=optimizers,
                scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
                ema_updates=self.ema.updates if self.ema else 0,
                rng=_rng_state(),
                epoch_logs=self._epoch_logs.state_dict(),
                callbacks=self._callback_states(),
                task=self.task.state_dict(),
                threads=self.threads,
                precision=self.precision,
                ranks=ranks,
            )
        path = save_checkpoint(self.checkpoint_dir / f"{kind}.safetensors", payload)
        self._emit("on_checkpoint", path, kind)
        return path

    def _remove_stale_temps(self) -> None:
        """Temporary files of checkpoint writes a killed process never finished (never a valid checkpoint)."""
        if self.checkpoint_dir is not None and self.checkpoint_dir.is_dir():
            for tmp in remove_stale_temps(self.checkpoint_dir):
                log.info("removed %s, left by an interrupted checkpoint write", tmp)

    def load(self, path: str | Path) -> None:
        """Restore everything ``save('last')`` wrote, so training continues exactly."""
        ckpt = load_checkpoint(path)
        try:
            self._load_full_state_dict(ckpt["model"], ckpt["optimizers"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            if self.ema is not None and ckpt.get("ema") is not None:
                self.ema.load_state_dict(ckpt["ema"], ckpt["ema_updates"])
            state = dict(ckpt["state"])
            # Checkpoints before the clock became a callback kept its totals in the state.
            legacy_clock = {k: state.pop(k) for k in ("wall_s", "cpu_s", "rapl_j") if k in state}
            self.state = TrainState(**state)
            self._epoch_logs.load_state_dict(ckpt["epoch_logs"])
            self._load_callback_states(ckpt.get("callbacks") or {"clock": legacy_clock})
            own = self._own_rank_state(ckpt)
            self.task.load_state_dict(own.get("task") or {})
            _set_rng_state(own["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: does not fit this run's model or optimizers ({exc}).") from None
        if self.train_config.threads is None and ckpt.get("threads") and ckpt["threads"] != self.threads:
            # The thread count can change the rounding of reductions: keep the one the run began with.
            self.threads = ckpt["threads"]
            set_threads(self.threads)
            log.info("CPU threads: %d (as in the checkpoint)", self.threads)
        if self.train_config.precision == "auto" and ckpt.get("precision") not in (None, self.precision):
            # The run began in another precision (e.g. on other hardware): continue in it, as the weights were trained.
            self.precision = ckpt["precision"]
            self.dtype = autocast_dtype(self.precision, self.device)
            log.info("precision: %s (as in the checkpoint)", self.precision)

    def _own_rank_state(self, ckpt: dict[str, Any]) -> dict[str, Any]:
        """This rank's RNG and task state (one process: the checkpoint's own)."""
        ranks = ckpt.get("ranks")
        if not self.world.active:
            if ranks and len(ranks) > 1:
                log.warning("resuming a %d-process run in one process: random ops continue from rank 0's state", len(ranks))
            return {"rng": ckpt["rng"], "task": ckpt.get("task")}
        if not ranks or len(ranks) != self.world.size:
            log.warning("the checkpoint was written by %s processes, not %d: each rank continues from %s, so the run "
                        "is not exactly the one that stopped", len(ranks) if ranks else 1, self.world.size,
                        "the saved states in turn" if ranks else "the one saved state")
            ranks = ranks or [{"rng": ckpt["rng"], "task": ckpt.get("task")}]
        return ranks[self.world.rank % len(ranks)]

    def _full_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's weights as one process holds them (FSDP: gathered from the shards onto every rank's CPU)."""
        if self._synced is not None and self.train_config.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            full = get_model_state_dict(self._synced, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            return {k.removeprefix("model."): v for k, v in full.items()}
        return self.model.state_dict()

    def _optimizer_states(self) -> dict[str, Any]:
        if self._synced is not None and self.train_config.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return {n: get_optimizer_state_dict(self._synced, o, options=options) for n, o in self.optimizers.items()}
        return {n: o.state_dict() for n, o in self.optimizers.items()}

    def _load_full_state_dict(self, weights: dict[str, torch.Tensor], optimizers: dict[str, Any]) -> None:
        if self._synced is not None and self.train_config.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self._synced, {f"model.{k}": v for k, v in weights.items()}, options=options)
            for name, opt in self.optimizers.items():
                set_optimizer_state_dict(self._synced, opt, optimizers[name], options=options)
                match_state_layout(opt)
            return
        self.model.load_state_dict(weights)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(optimizers[name])
            match_state_layout(opt)  # the checkpoint's moments are contiguous; channels_last parameters are not

    def _callback_states(self) -> dict[str, Any]:
        """The state of every callback that has one, under its name (saved in ``last``)."""
        states = {name: callback.state_dict() for name, callback in self._stateful_callbacks().items()}
        return {name: state for name, state in states.items() if state is not None}

    def _load_callback_states(self, states: dict[str, Any]) -> None:
        for name, callback in self._stateful_callbacks().items():
            if name in states:
                callback.load_state_dict(states[name])

    def _stateful_callbacks(self) -> dict[str, Callback]:
        """The callbacks that can have a state (their class defines ``state_dict``), by unique name: the set does
        not depend on what each holds now, so a logger that had no state yet when the run resumes (MLflow's run
        id before ``on_fit_start``) still gets back what it saved."""
        named: dict[str, Callback] = {}
        for callback in self.callbacks:
            if type(callback).state_dict is not Callback.state_dict or callback.state_dict() is not None:
                named[_unique(callback_name(callback), named)] = callback
        return named


def _unique(name: str, taken: dict[str, Any]) -> str:
    """``name``, or ``name#2``, ``name#3``... when several callbacks share a name."""
    n, candidate = 1, name
    while candidate in taken:
        n += 1
        candidate = f"{name}#{n}"
    return candidate


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
