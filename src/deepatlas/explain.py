"""Explanations of image classifiers: which pixels and regions a class score depends on.

For a model f and a class c, with S = f(x)_c the class logit:

- **Saliency** (Simonyan, Vedaldi & Zisserman, 2014, sec. 3): |dS/dx|, the absolute input
  gradient, per pixel and channel.
- **Integrated gradients** (Sundararajan, Taly & Yan, 2017, eq. 1): for a baseline x' (default: zeros,
  the dataset mean after normalisation),
  IG_i(x) = (x_i - x'_i) * integral_0^1 dS(x' + a (x - x'))/dx_i da, the integral by ``steps``-point
  Gauss-Legendre quadrature on [0, 1] (Captum's default) or the trapezoid rule. Completeness,
  sum_i IG_i = S(x) - S(x') (their Proposition 1), is the convergence check: ``delta`` is the
  difference, and a large |delta| relative to |S(x) - S(x')| asks for more steps.
- **Grad-CAM** (Selvaraju et al., 2017, eqs. 1-2): on the feature maps A^k (B, K, h, w) of a
  convolutional layer, alpha_k = mean over the map of dS/dA^k, and L = ReLU(sum_k alpha_k A^k),
  (B, 1, h, w), upsampled bilinearly to the input size for an overlay. The default layer is the
  last module in forward order whose output is a 4-D map (the last convolutional stage or block).

For Transformers:

- **Attention maps**: the softmax weights of every layer and head (``record_attention``), as the
  model's own attention computes them (fused kernels keep no weights, so they are recomputed from
  the layer's queries and keys with the same masks).
- **Attention rollout** (Abnar & Zuidema, 2020, sec. 3): with A_l the head-averaged weights of layer
  l, the residual connection accounted for as A~_l = (A_l + I) / 2 (rows still sum to 1), the
  rollout is A~_L ... A~_2 A~_1; for a ViT the [class] token's row over the patches, on the patch
  grid and upsampled to the image, is the map (method ``rollout``).

Saliency, integrated gradients and Grad-CAM equal Captum's ``Saliency``, ``IntegratedGradients`` and ``LayerGradCam`` on the same model
and inputs (tests/oracles/test_explain_captum.py); Captum is a test oracle, not a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

METHODS = ("saliency", "integrated-gradients", "gradcam", "rollout")


def _scores(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) the logits of each row's target class."""
    return model(x).gather(1, target.view(-1, 1)).squeeze(1)


def _targets(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """(B,) target classes: given, or each row's predicted class."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(dim=1)
    return torch.as_tensor(target, device=x.device).long().expand(len(x)).clone() if torch.as_tensor(target).ndim == 0 \
        else torch.as_tensor(target, device=x.device).long()


def saliency(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None) -> torch.Tensor:
    """|dS/dx|, the shape of ``x``."""
    target = _targets(model, x, target)
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_scores(model, x, target).sum(), x)
    return grad.abs()


def _quadrature(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Points a_k in [0, 1] and weights w_k with sum_k w_k g(a_k) ~ integral_0^1 g."""
    if steps < 1:
        raise ConfigError(f"steps: {steps}; integrated gradients needs at least 1 step (e.g. 50).")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ConfigError("steps: the trapezoid rule needs at least 2 steps.")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    raise ConfigError(f"method: {method!r} is not a quadrature (allowed: gausslegendre, riemann_trapezoid).")


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None, baseline: torch.Tensor | None = None,
    steps: int = 50, method: str = "gausslegendre", batch: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(attributions like ``x``, delta (B,) = sum(attributions) - (S(x) - S(baseline)))."""
    target = _targets(model, x, target)
    base = torch.zeros_like(x) if baseline is None else baseline.expand_as(x).to(x)
    alphas, weights = _quadrature(steps, method)
    total = torch.zeros_like(x)
    for lo in range(0, steps, batch):  # path points in chunks: (chunk * B, C, H, W) per backward
        a = torch.tensor(alphas[lo:lo + batch], dtype=x.dtype, device=x.device)
        w = torch.tensor(weights[lo:lo + batch], dtype=x.dtype, device=x.device)
        shape = (-1,) + (1,) * x.ndim
        path = (base[None] + a.view(shape) * (x - base)[None]).flatten(0, 1).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(_scores(model, path, target.repeat(len(a))).sum(), path)
        total += (grad.view(len(a), *x.shape) * w.view(shape)).sum(0)
    attributions = (x - base) * total
    with torch.no_grad():
        delta = attributions.flatten(1).sum(1) - (_scores(model, x, target) - _scores(model, base, target))
    return attributions.detach(), delta


def last_feature_map(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The last module, in forward order of completion, whose output is a 4-D (B, K, h, w) map."""
    seen: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append(mod) if isinstance(out, torch.Tensor) and out.ndim == 4 else None)
             for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ConfigError(f"gradcam: {type(model).__name__} has no layer with a 2-D feature map (Grad-CAM needs a convolutional model).")
    return seen[-1]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        from .errors import suggest

        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ConfigError(f"--layer: {name!r} is not a module of the model (convolutions: {', '.join(convs[-6:])})." + suggest(name, modules))
    return modules[name]


def gradcam(
    model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None, layer: nn.Module | None = None,
    upsample: bool = True,
) -> torch.Tensor:
    """(B, 1, H, W) Grad-CAM maps (or (B, 1, h, w) with ``upsample=False``)."""
    target = _targets(model, x, target)
    layer = layer or last_feature_map(model, x)
    kept: dict[str, torch.Tensor] = {}

    def keep(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        kept["maps"] = out

    hook = layer.register_forward_hook(keep)
    try:
        scores = _scores(model, x, target)
    finally:
        hook.remove()
    maps = kept["maps"]
    (grad,) = torch.autograd.grad(scores.sum(), maps)
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # eq. 1: global-average-pooled gradients
    cam = F.relu((alpha * maps).sum(dim=1, keepdim=True)).detach()  # eq. 2
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False) if upsample else cam


def record_attention(model: nn.Module, *inputs: Any) -> list[torch.Tensor]:
    """The attention weights (B, h, Tq, Tk) of every attention layer, in the order they ran, for ``model(*inputs)``."""
    from .nn.attention import MultiHeadAttention

    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ConfigError(f"attention: {type(model).__name__} has no attention layer (rollout needs a Transformer).")
    order: list[torch.Tensor] = []
    hooks = []
    for layer in layers:
        layer.recorded = []
        hooks.append(layer.register_forward_hook(lambda mod, _i, _o: order.append(mod.recorded[-1])))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for layer, hook in zip(layers, hooks, strict=True):
            layer.recorded = None
            hook.remove()
    return order


def attention_rollout(weights: list[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """(B, T, T): prod_l ((1 - residual) mean_heads(A_l) + residual I), rows renormalised, the last layer leftmost."""
    rollout = None
    for a in weights:
        mean = a.mean(dim=1)  # (B, T, T) over heads
        mixed = (1 - residual) * mean + residual * torch.eye(mean.shape[-1], dtype=mean.dtype, device=mean.device)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout
    if rollout is None:
        raise ConfigError("attention_rollout: no attention weights.")
    return rollout


def rollout(model: nn.Module, x: torch.Tensor, target: Any = None) -> torch.Tensor:
    """(B, 1, H, W): a ViT's attention rollout from its [class] token to the patches, upsampled to the image.
    (Rollout does not depend on the class: ``target`` is accepted and ignored.)"""
    r = attention_rollout(record_attention(model, x))  # (B, 1 + N, 1 + N)
    patches = r[:, 0, 1:]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ConfigError(f"rollout: {patches.shape[1]} tokens after the [class] token are not a square patch grid (a ViT's).")
    grid = patches.reshape(-1, 1, side, side)
    return F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)


def default_method(model: nn.Module) -> str:
    """rollout for a model with attention layers, gradcam for one with 2-D feature maps, else saliency."""
    from .nn.attention import MultiHeadAttention

    if any(isinstance(m, MultiHeadAttention) for m in model.modules()):
        return "rollout"
    return "gradcam" if any(isinstance(m, nn.Conv2d) for m in model.modules()) else "saliency"


EXPLAINERS: dict[str, Callable[..., Any]] = {
    "saliency": saliency, "integrated-gradients": integrated_gradients, "gradcam": gradcam, "rollout": rollout,
}


def explain(model: nn.Module, x: torch.Tensor, method: str, target: int | None = None, **options: Any) -> torch.Tensor:
    """(B, H, W) a per-pixel map of ``method`` (channels summed by absolute value), for drawing."""
    if method not in EXPLAINERS:
        from .errors import one_of, suggest

        raise ConfigError(f"--method: unknown {method!r} (allowed: {one_of(METHODS)})." + suggest(method, METHODS))
    was_training = model.training
    model.eval()
    try:
        out = EXPLAINERS[method](model, x, target, **options)
    finally:
        model.train(was_training)
    attributions = out[0] if isinstance(out, tuple) else out
    return attributions.abs().sum(dim=1)


__all__ = ["METHODS", "attention_rollout", "default_method", "explain", "find_layer", "gradcam", "integrated_gradients",
           "last_feature_map", "record_attention", "rollout", "saliency"]
