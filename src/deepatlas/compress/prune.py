"""Magnitude pruning: unstructured (global or per layer) and structured channel pruning of ResNets.

- Unstructured (Han et al. 2015, "Learning both Weights and Connections"): the weights of smallest |w|
  are set to zero, with ``torch.nn.utils.prune`` (L1 criterion). ``global``: one threshold over all
  convolution and linear weights, so that ``amount`` of all of them are zero and layers lose different
  shares; ``layer``: ``amount`` of each layer. The masks are made permanent (``prune.remove``: zeros in
  ``weight``, no ``weight_orig``/``weight_mask``), and kept by ``MaskCallback`` during fine-tuning, which
  zeroes the pruned weights again after every optimizer step, so the sparsity stays exactly as asked.
  Dense kernels do not run faster on zeros: the gain is in compressed size (and in sparse FLOPs).
- Structured (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): in each basic residual block the
  channels between the two convolutions with the smallest L1 norm of their conv1 filter are removed:
  conv1's output filters, bn1's channels and conv2's input channels. The block's input and output widths
  (and so the residual additions) are unchanged. The result is a smaller network, built from its own
  config (``model.inner_widths``), with fewer parameters and FLOPs that runs faster on dense kernels.
- Iterative (Han et al. 2015, Section 3.3): prune in rounds to increasing sparsity, fine-tuning after
  each, so the network recovers before the next cut; ``schedule(target, rounds)`` gives the sparsity of
  each round, geometric in the kept fraction: 1 - (1 - target)^(r / rounds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from ..engine import Callback
from ..errors import ConfigError
from .measure import prunable_weights

METHODS = ("global", "layer", "channels")


def check_amount(amount: float, key: str = "--prune") -> float:
    if not 0.0 < amount < 1.0:
        raise ConfigError(f"{key}: {amount} is not a fraction to remove (allowed: strictly between 0 and 1, e.g. 0.5).")
    return float(amount)


def check_method(method: str) -> str:
    from ..errors import one_of, suggest

    if method not in METHODS:
        raise ConfigError(f"--method: {method!r} is not a pruning method (one of: {one_of(METHODS)})." + suggest(method, METHODS))
    return method


def schedule(target: float, rounds: int) -> list[float]:
    """The sparsity after each of ``rounds`` rounds, reaching ``target``: 1 - (1 - target)^(r / rounds)."""
    return [1.0 - (1.0 - target) ** (r / rounds) for r in range(1, rounds + 1)]


def unstructured(model: nn.Module, amount: float, method: str = "global") -> dict[str, torch.Tensor]:
    """Zero ``amount`` of the convolution and linear weights of ``model`` in place, by magnitude; the masks
    (1 = kept) by module name. Weights already zero count as pruned (a second round prunes further)."""
    check_amount(amount)
    layers = prunable_weights(model)
    if not layers:
        raise ConfigError(f"--prune: {type(model).__name__} has no convolution or linear layer to prune.")
    if method == "global":
        prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=amount)
    elif method == "layer":
        for _, m in layers:
            prune.l1_unstructured(m, "weight", amount=amount)
    else:
        raise ConfigError(f"--method: {method!r} is not an unstructured method (global, layer).")
    masks = {}
    for name, m in layers:
        masks[name] = m.weight_mask.detach().clone()
        prune.remove(m, "weight")  # zeros in weight itself: the state dict keeps its keys
    return masks


class MaskCallback(Callback):
    """Keeps pruned weights at zero while fine-tuning: after every optimizer step, weight *= mask."""

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        self.masks = dict(masks)

    def on_fit_start(self, trainer: Any) -> None:
        self._apply(trainer.model)

    def on_train_step_end(self, trainer: Any) -> None:
        self._apply(trainer.model)

    @torch.no_grad()
    def _apply(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        for name, mask in self.masks.items():
            weight = modules[name].weight
            weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks of a pruned network's zeros (1 where a weight is non-zero)."""
    return {name: (m.weight != 0).to(m.weight.dtype) for name, m in prunable_weights(model)}


def _blocks(model: nn.Module) -> list[nn.Module]:
    from ..models.resnet import BasicBlock, PreActBlock, ResNet

    if not isinstance(model, ResNet) or model.config.block != "basic":
        raise ConfigError(
            f"--method channels: structured channel pruning is implemented for ResNets of basic blocks "
            f"(resnet18/34, the CIFAR resnet20-1202, WRN); {type(model).__name__} is not one; use --method global."
        )
    return [m for m in model.modules() if isinstance(m, (BasicBlock, PreActBlock))]


@torch.no_grad()
def channels(model: nn.Module, amount: float) -> tuple[nn.Module, list[int]]:
    """A new, smaller ResNet with ``amount`` of the channels between each basic block's two convolutions
    removed (those whose conv1 filter has the smallest L1 norm), and the kept channel counts per block."""
    from ..models.resnet import PreActBlock, ResNet

    check_amount(amount)
    blocks = _blocks(model)
    kept_per_block, widths = [], []
    for block in blocks:
        norms = block.conv1.weight.abs().sum(dim=(1, 2, 3))  # (inner,) L1 norm of each output filter
        keep = max(1, round(norms.numel() * (1.0 - amount)))
        index = norms.argsort(descending=True)[:keep].sort().values
        kept_per_block.append(index)
        widths.append(keep)
    config = dataclasses.replace(model.config, inner_widths=tuple(widths))
    small = ResNet(config)
    state = model.state_dict()
    new = small.state_dict()
    for (name, block), index in zip(((n, m) for n, m in model.named_modules() if m in blocks), kept_per_block, strict=True):
        state[f"{name}.conv1.weight"] = state[f"{name}.conv1.weight"][index]
        state[f"{name}.conv2.weight"] = state[f"{name}.conv2.weight"][:, index]
        # the BN between the convolutions: bn1 in a post-activation block, bn2 in a pre-activation one
        bn = f"{name}.bn2" if isinstance(block, PreActBlock) else f"{name}.bn1"
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[f"{bn}.{key}"] = state[f"{bn}.{key}"][index]
    missing = [k for k in new if new[k].shape != state[k].shape]
    if missing:  # pragma: no cover - a block layout this function does not know
        raise ConfigError(f"--method channels: cannot slice {missing[:3]} of {type(model).__name__}.")
    small.load_state_dict({k: state[k].contiguous() for k in new})
    return small.eval(), widths


__all__ = ["METHODS", "MaskCallback", "channels", "check_amount", "check_method", "masks_of", "schedule", "unstructured"]
