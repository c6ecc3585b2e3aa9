"""Losses beyond the likelihood: quantile, robust and imbalance-aware, each with the formula it implements.

All take residuals or logits as tensors and return per-element values (``reduction="none"``
semantics); callers average.

- **Pinball (quantile) loss** (Koenker & Bassett 1978): with e = y - f(x),
  rho_tau(e) = e (tau - 1[e < 0]) = max(tau e, (tau - 1) e). Its minimiser is the tau-quantile.
  (The course slide writes max(tau e, (1 - tau) e): for 0 < tau < 1 both terms then have the sign of
  e, so a negative residual gets a negative loss and the loss has no minimum; the check function's
  second term is (tau - 1) e.)
- **Huber** (Huber 1964): 1/2 r^2 for |r| <= delta, delta (|r| - delta / 2) otherwise.
- **Tukey's biweight** (Beaton & Tukey 1974): c^2/6 (1 - (1 - (r/c)^2)^3) for |r| <= c, c^2/6 otherwise.
- **General and adaptive robust loss** (Barron 2019, CVPR, eq. 1 and its limits eq. 5-7):
  rho(x, alpha, c) = |alpha - 2| / alpha (((x/c)^2 / |alpha - 2| + 1)^(alpha/2) - 1), with the limits
  alpha = 2: 1/2 (x/c)^2 (L2); alpha = 0: log(1/2 (x/c)^2 + 1) (Cauchy / Lorentzian);
  alpha -> -inf: 1 - exp(-1/2 (x/c)^2) (Welsch); alpha = 1 is the pseudo-Huber / Charbonnier loss
  sqrt((x/c)^2 + 1) - 1 and alpha = -2 Geman-McClure. alpha is a fixed shape here (not learnt: the
  adaptive version needs the partition function of Barron's eq. 16).
- **Focal loss** (Lin, Goyal, Girshick, He & Dollar 2017, eq. 5): FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t;
  gamma = 0 is the (weighted) cross-entropy.
- **Class-balanced weights by the effective number of samples** (Cui, Jia, Lin, Song & Belongie 2019,
  eq. 2-3): E_n = (1 - beta^n) / (1 - beta), w_c proportional to 1 / E_{n_c} = (1 - beta) / (1 - beta^{n_c}),
  normalised so that the weights sum to the number of classes.
- **"Balanced" inverse-frequency weights** (King & Zeng 2001; scikit-learn's ``compute_class_weight``):
  w_c = n / (K n_c).
- **Symmetric InfoNCE** (CLIP, Radford et al. 2021; the survey seed's equation (8)): for logits
  s_ij = exp(t) cos(f(x_i), g(y_j)) of n paired images and captions,
  L = 1/2 (CE(S, diag) + CE(S^T, diag)), the mean of the image-to-text and text-to-image
  cross-entropies with the matching pair as the class (the one loss here that returns the batch mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..metrics.intervals import (
    pinball,  # rho_tau(e) = max(tau e, (tau - 1) e): one definition, re-exported here
)


def huber(residual: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber's loss of residuals (the same as ``torch.nn.functional.huber_loss``)."""
    a = residual.abs()
    return torch.where(a <= delta, 0.5 * residual**2, delta * (a - 0.5 * delta))


def tukey(residual: torch.Tensor, c: float = 4.685) -> torch.Tensor:
    """Tukey's biweight; c = 4.685 gives 95% efficiency at the normal (for unit-scale residuals)."""
    inside = (1 - (residual / c) ** 2).clamp_min(0.0)
    return c**2 / 6 * (1 - inside**3)


def barron(x: torch.Tensor, alpha: float = 1.0, c: float = 1.0) -> torch.Tensor:
    """Barron's general robust loss rho(x, alpha, c) (2019, eq. 1), with its alpha = 2, 0 and -inf limits."""
    if c <= 0:
        raise ConfigError(f"task.barron_scale: must be positive, got {c}.")
    z = (x / c) ** 2
    if alpha == 2:
        return 0.5 * z
    if alpha == 0:
        return torch.log1p(0.5 * z)
    if math.isinf(alpha) and alpha < 0:
        return -torch.expm1(-0.5 * z)
    b = abs(alpha - 2)
    return b / alpha * ((z / b + 1) ** (alpha / 2) - 1)


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) focal loss -alpha_t (1 - p_t)^gamma log p_t of logits (B, K) and labels (B,); ``weight`` (K,) = alpha."""
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1)  # log p_t
    loss = -((1 - log_p.exp()) ** gamma) * log_p if gamma else -log_p
    return loss * weight[target] if weight is not None else loss


def weighted_mean(loss: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """sum_i w_{y_i} l_i / sum_i w_{y_i} (the normalisation of ``F.cross_entropy(weight=...)``) for weighted losses."""
    if weight is None:
        return loss.mean()
    return loss.sum() / weight[target].sum()


def balanced_weights(counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """n / (K n_c) per class (scikit-learn's 'balanced'); a class absent from training gets weight 0."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    k = int((n > 0).sum())
    return torch.where(n > 0, n.sum() / (k * n.clamp_min(1)), torch.zeros_like(n)).float()


def effective_number_weights(counts: Sequence[int] | torch.Tensor, beta: float = 0.999) -> torch.Tensor:
    """(1 - beta) / (1 - beta^{n_c}), normalised to sum to the number of classes present (Cui et al. 2019)."""
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"task.cb_beta: must lie in [0, 1), got {beta}.")
    n = torch.as_tensor(counts, dtype=torch.float64)
    raw = torch.where(n > 0, (1 - beta) / (1 - beta ** n.clamp_min(1)), torch.zeros_like(n))
    return (raw * int((n > 0).sum()) / raw.sum()).float()


__all__ = ["balanced_weights", "barron", "clip_loss", "effective_number_weights", "focal", "huber", "pinball", "tukey", "weighted_mean"]


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of (n, n) image-text logits whose pair i is (image i, caption i): the mean of the
    image-to-text cross-entropy (rows) and the text-to-image one (columns). A scalar, averaged over the batch."""
    n = logits_per_image.shape[0]
    if logits_per_image.shape != (n, n):
        raise ValueError(f"clip_loss: expected square (n, n) logits of paired examples, got {tuple(logits_per_image.shape)}")
    target = torch.arange(n, device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_image.t(), target)) / 2
