"""Optimizers from the ``optim`` section, with weight decay optionally sparing norms and biases.

Update rules (torch.optim implements them; g is the gradient, eta the lr):
- SGD with momentum: v <- mu v + g, w <- w - eta v (Nesterov: w <- w - eta (g + mu v)).
- Adam (Kingma & Ba, 2014): bias-corrected first and second moments, w <- w - eta m^ / (sqrt(v^) + eps).
- AdamW (Loshchilov & Hutter, 2017): Adam with decoupled weight decay w <- w - eta lambda w.
- RMSprop (Hinton, 2012): v <- alpha v + (1 - alpha) g^2, w <- w - eta g / (sqrt(v) + eps).
- Adagrad (Duchi et al., 2011): G <- G + g^2 (accumulated), w <- w - eta g / (sqrt(G) + eps).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..config import OptimConfig


def param_groups(params: Iterable[nn.Parameter], config: OptimConfig) -> list[dict]:
    """One group, or two when norms and biases (1-D parameters) are spared weight decay."""
    params = [p for p in params if p.requires_grad]
    if config.decay_norm_and_bias or config.weight_decay == 0:
        return [{"params": params, "weight_decay": config.weight_decay}]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(params: Iterable[nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """The torch optimizer for ``config.name`` over ``params``."""
    groups = param_groups(params, config)
    c = config
    if c.name == "sgd":
        return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov)
    if c.name == "adam":
        return torch.optim.Adam(groups, lr=c.lr, betas=c.betas, eps=c.eps)
    if c.name == "adamw":
        return torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, eps=c.eps)
    if c.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=c.lr, alpha=c.alpha, eps=c.eps, momentum=c.momentum)
    if c.name == "adagrad":
        return torch.optim.Adagrad(groups, lr=c.lr, eps=c.eps)
    raise ValueError(f"unknown optimizer {c.name!r}")  # config validation makes this unreachable
