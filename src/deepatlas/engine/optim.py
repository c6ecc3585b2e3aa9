"""Optimizers from the ``optim`` section, with weight decay optionally sparing norms and biases.

Update rules (torch.optim implements them; g is the gradient, eta the lr):
- SGD with momentum: v <- mu v + g, w <- w - eta v (Nesterov: w <- w - eta (g + mu v)).
- Adam (Kingma & Ba, 2014): bias-corrected first and second moments, w <- w - eta m^ / (sqrt(v^) + eps).
- AdamW (Loshchilov & Hutter, 2017): Adam with decoupled weight decay w <- w - eta lambda w.
- RMSprop (Hinton, 2012): v <- alpha v + (1 - alpha) g^2, w <- w - eta g / (sqrt(v) + eps).
- Adagrad (Duchi et al., 2011): G <- G + g^2 (accumulated), w <- w - eta g / (sqrt(G) + eps).
- L-BFGS (Liu & Nocedal, 1989; Nocedal & Wright 2006, Algorithm 7.4): the direction -H g with H the inverse
  Hessian estimate of the last m pairs (s, y) = (w_{k+1} - w_k, g_{k+1} - g_k) by the two-loop recursion,
  the step length from a strong-Wolfe line search; the trainer passes a closure that re-evaluates the loss
  on the batch, so it suits full-batch fits (``data.batch_size`` at least the training set).

L1 (Tibshirani 1996) and the elastic net (Zou & Hastie 2005): ``l1`` adds the subgradient l1 sign(w) of
l1 ||w||_1 to the gradient of every weight (parameters of two or more dimensions: not biases or norm
scales) before clipping and the step; with ``weight_decay`` (the L2 penalty of sgd and adam) this is the
elastic net.

``fused``: torch's single-kernel implementations of Adam, AdamW and SGD, the same update rule (numerically
equal to the per-parameter loop up to rounding).

Fine-tuning controls select parameters by name with glob patterns (``head.*``, ``*.bn*.weight``; a bare
module path such as ``layer3`` also matches everything under it):
- ``freeze``: parameters that never train (no gradient, not in any optimizer);
- ``lr_groups``: discriminative learning rates (Howard & Ruder 2018, eq. 2), lr = optim.lr x factor for the
  parameters of each pattern (the first pattern that matches wins);
- ``unfreeze``: gradual unfreezing (Howard & Ruder 2018, section 3.2): groups listed from the top of the
  network down; in epoch e (0-based) groups 0..e train and the later ones are frozen. Parameters in no
  group train from the start. The trainable set is a function of the epoch, so a resumed run agrees.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..config import OptimConfig
from ..errors import ConfigError, one_of, suggest


def matches(name: str, pattern: str) -> bool:
    """Whether parameter ``name`` matches the glob ``pattern`` (a module path matches its parameters)."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*")


def select(names: Iterable[str], pattern: str, key: str) -> list[str]:
    """The names that ``pattern`` matches (a comma-separated list: any of them); none is a ConfigError."""
    names = list(names)
    found: list[str] = []
    for part in (p.strip() for p in pattern.split(",")):
        hits = [n for n in names if matches(n, part)]
        if not hits:
            parts_of = [n.split(".") for n in names]
            modules = sorted({".".join(p[:i]) for p in parts_of for i in range(1, len(p))})  # every module path
            top = sorted({p[0] for p in parts_of})
            raise ConfigError(
                f"{key}: pattern {part!r} matches no parameter of this model (its top-level modules: {one_of(top)}); "
                f"patterns are globs over names like {names[0]!r} (or module paths like {modules[0]!r})."
                + suggest(part, modules)
            )
        found += [n for n in hits if n not in found]
    return found


@torch.no_grad()
def add_l1(params: Iterable[nn.Parameter], l1: float) -> None:
    """grad <- grad + l1 sign(w) for the weights (ndim >= 2) among ``params`` that have a gradient."""
    for p in params:
        if p.grad is not None and p.ndim >= 2:
            p.grad.add_(torch.sign(p), alpha=l1)


class FineTuning:
    """Which named parameters train when: ``optim.freeze`` always off, ``optim.unfreeze`` groups by epoch."""

    def __init__(self, model: nn.Module, config: OptimConfig) -> None:
        self.params = dict(model.named_parameters())
        names = list(self.params)
        self.frozen = {n for pattern in config.freeze for n in select(names, pattern, "optim.freeze")}
        self.groups: list[list[str]] = []
        for i, pattern in enumerate(config.unfreeze):
            self.groups.append([n for n in select(names, pattern, f"optim.unfreeze[{i}]") if n not in self.frozen])
        for pattern in (config.lr_groups or {}):
            select(names, pattern, f"optim.lr_groups.{pattern}")
        if self.frozen and len(self.frozen) == len(names):
            total = sum(p.numel() for p in self.params.values())
            raise ConfigError(f"optim.freeze: the patterns {list(config.freeze)} freeze all {total:,} parameters; nothing would train "
                              "(freeze fewer modules, e.g. all but the head).")

    @property
    def active(self) -> bool:
        return bool(self.frozen or self.groups)

    def freeze(self) -> None:
        """Parameters of ``optim.freeze`` stop collecting gradients (call before the optimizers are built)."""
        for name in self.frozen:
            self.params[name].requires_grad_(False)

    def set_epoch(self, epoch: int) -> None:
        """Gradual unfreezing: groups 0..epoch train, later groups are frozen."""
        for i, group in enumerate(self.groups):
            for name in group:
                self.params[name].requires_grad_(i <= epoch)


def param_groups(
    params: Iterable[nn.Parameter], config: OptimConfig, names: Mapping[int, str] | None = None,
) -> list[dict]:
    """One group per (weight decay, lr factor): norms and biases (1-D parameters) may be spared weight decay,
    and ``optim.lr_groups`` scales the lr of the parameters it names (``names``: id(parameter) -> name)."""
    params = [p for p in params if p.requires_grad]
    spare = not config.decay_norm_and_bias and config.weight_decay != 0
    patterns = config.lr_groups or {}

    def factor(p: nn.Parameter) -> float:
        name = (names or {}).get(id(p))
        return next((f for pattern, f in patterns.items() if name and matches(name, pattern)), 1.0)

    factors = [factor(p) for p in params]
    groups = []
    for f in dict.fromkeys(factors) or (1.0,):
        members = [p for p, pf in zip(params, factors, strict=True) if pf == f]
        if spare:
            parts = [([p for p in members if p.ndim >= 2], config.weight_decay), ([p for p in members if p.ndim < 2], 0.0)]
        else:
            parts = [(members, config.weight_decay)]
        for ps, decay in parts:
            groups.append({"params": ps, "weight_decay": decay, **({"lr_scale": f} if f != 1.0 else {})})
    return groups


def build_optimizer(
    params: Iterable[nn.Parameter], config: OptimConfig, names: Mapping[int, str] | None = None,
    fused_default: bool = True,
) -> torch.optim.Optimizer:
    """The torch optimizer for ``config.name`` over ``params`` (``names``: id -> name, for ``optim.lr_groups``).

    ``optim.fused: null`` takes torch's fused kernel for sgd, adam and adamw on CPU and CUDA parameters
    unless ``fused_default`` is False (the trainer passes False under FSDP, whose sharded parameters
    the fused kernels do not take).
    """
    groups = param_groups(params, config, names)
    c = config
    devices = {p.device.type for g in groups for p in g["params"]}
    fuse = c.fused if c.fused is not None else (
        fused_default and c.name in ("sgd", "adam", "adamw") and bool(devices) and devices <= {"cpu", "cuda"})
    fused = {"fused": True} if fuse else {}
    if c.name == "sgd":
        return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, **fused)
    if c.name == "adam":
        return torch.optim.Adam(groups, lr=c.lr, betas=c.betas, eps=c.eps, **fused)
    if c.name == "adamw":
        return torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, eps=c.eps, **fused)
    if c.name == "lbfgs":  # one group (torch's L-BFGS takes no per-group options)
        params = [p for g in groups for p in g["params"]]
        return torch.optim.LBFGS(params, lr=c.lr, max_iter=c.lbfgs_max_iter, history_size=c.lbfgs_history,
                                 line_search_fn="strong_wolfe")
    if c.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=c.lr, alpha=c.alpha, eps=c.eps, momentum=c.momentum)
    if c.name == "adagrad":
        return torch.optim.Adagrad(groups, lr=c.lr, eps=c.eps)
    raise ValueError(f"unknown optimizer {c.name!r}")  # config validation makes this unreachable


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (momenta, Adam's moments) its parameter's memory layout.

    ``Optimizer.load_state_dict`` keeps a loaded tensor's strides: a checkpoint's contiguous (NCHW) moments
    then sit beside channels_last parameters, and torch's fused sgd/adam/adamw kernels pair the elements by
    memory position, not by index, so a resumed channels_last run would step with its moments scrambled
    (an AdamW step of lr 0.1 off by up to 0.17, measured; the foreach path is unaffected). Called after every load.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            for key, value in (state or {}).items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)
