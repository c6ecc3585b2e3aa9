"""Exponential moving average of weights (Polyak & Juditsky, 1992; as used by Tan & Le, 2019).

theta_ema <- d theta_ema + (1 - d) theta after each optimizer step, with the
decay warmed up as d_t = min(d, (1 + t) / (10 + t)) so that early averages are
not dominated by the random initialisation. Floating-point buffers (BatchNorm
running statistics) are averaged too; integer buffers are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of a module that tracks the moving average of its weights."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def _pairs(self, module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        ema_state = self.module.state_dict()
        avg_ema, avg_src, copy_pairs = [], [], []
        for key, value in module.state_dict().items():
            target = ema_state[key]
            if value.is_floating_point():
                avg_ema.append(target)
                avg_src.append(value.detach())
            else:
                copy_pairs.append((target, value))
        return avg_ema, avg_src, copy_pairs

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        avg_ema, avg_src, copy_pairs = self._pairs(module)
        if avg_ema:
            torch._foreach_lerp_(avg_ema, avg_src, 1.0 - decay)
        for target, value in copy_pairs:
            target.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates
