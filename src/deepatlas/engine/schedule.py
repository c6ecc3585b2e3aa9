"""Learning-rate schedules as pure functions of the optimizer step.

``lr(step) = optim.lr * factor(step)``: nothing to save in a checkpoint but the
step, so a resumed run follows the same curve exactly. Positions are measured
in ``schedule.unit`` (epochs or steps); with ``interval: epoch`` the position is
floored to whole epochs, so the rate only changes at epoch ends.

- step: gamma ** floor(t / step_size); multi-step: gamma ** (milestones passed)
- cosine (Loshchilov & Hutter, 2016, without restarts): min + (1 - min) (1 + cos(pi t / T)) / 2
- one-cycle (Smith & Topin, 2017): cosine rise from lr/div_factor to lr over
  pct_start of training, then cosine fall to lr/(div_factor*final_div_factor)
- inverse-sqrt (Vaswani et al. 2017, eq. 3): after the linear warm-up, lr * sqrt(warmup / step)
- warm-up (Goyal et al., 2017): linear from 0 to 1 over ``warmup``, before any schedule
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

import torch

from ..config import ScheduleConfig


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0))) / 2


class LRSchedule:
    """Sets every optimizer's learning rate from the step count."""

    def __init__(self, config: ScheduleConfig, base_lr: float, steps_per_epoch: int, total_steps: int) -> None:
        self.config = config
        self.base_lr = base_lr
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total_steps = max(1, total_steps)

    def _steps(self, amount: float) -> float:
        """``amount`` in schedule units, as optimizer steps."""
        return amount * self.steps_per_epoch if self.config.unit == "epoch" else amount

    def factor(self, step: int) -> float:
        """lr / base lr for optimizer step number ``step`` (0-based)."""
        c = self.config
        quantum = 1
        if c.interval == "epoch":
            step = (step // self.steps_per_epoch) * self.steps_per_epoch
            quantum = self.steps_per_epoch
        warmup = self._steps(c.warmup)
        if step < warmup:
            return (step + quantum) / (warmup + quantum)
        if c.name == "constant":
            return 1.0
        if c.name == "step":
            return c.gamma ** math.floor(step / self._steps(c.step_size))
        if c.name == "multi-step":
            return c.gamma ** bisect.bisect_right([self._steps(m) for m in c.milestones], step)
        if c.name == "inverse-sqrt":  # peaks at optim.lr when the warm-up ends
            return math.sqrt((warmup + quantum) / (step + quantum))
        min_factor = c.min_lr / self.base_lr if self.base_lr > 0 else 0.0
        if c.name in ("cosine", "warmup-cosine"):
            return _cosine(1.0, min_factor, (step - warmup) / max(1.0, self.total_steps - warmup))
        if c.name == "one-cycle":  # the phase boundaries of torch.optim.lr_scheduler.OneCycleLR
            start = 1.0 / c.div_factor
            rise_end = max(1.0, c.pct_start * self.total_steps - 1)
            if step <= rise_end:
                return _cosine(start, 1.0, step / rise_end)
            fall = max(1.0, self.total_steps - 1 - rise_end)
            return _cosine(1.0, start / c.final_div_factor, (step - rise_end) / fall)
        raise ValueError(f"unknown schedule {c.name!r}")

    def lr(self, step: int) -> float:
        return self.base_lr * self.factor(step)

    def apply(self, optimizers: Iterable[torch.optim.Optimizer], step: int) -> float:
        """Set the learning rate for optimizer step ``step`` and return it."""
        lr = self.lr(step)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr
