"""Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization") and CutMix (Yun et al. 2019).

Both train on convex combinations of pairs of examples and of their labels. With (x_i, y_i) and
(x_j, y_j) two examples of a batch (j = pi(i) for a random permutation pi) and lambda ~ Beta(alpha, alpha):

- mixup (eq. 1):   x~ = lambda x_i + (1 - lambda) x_j,       y~ = lambda y_i + (1 - lambda) y_j;
- CutMix (eq. 1):  x~ = M * x_i + (1 - M) * x_j, M a binary mask that is 0 inside a box B of side
  (W sqrt(1 - lambda), H sqrt(1 - lambda)) centred at a uniform point (r_x, r_y) (eq. 2) and clipped to
  the image; y~ = lambda' y_i + (1 - lambda') y_j with lambda' = 1 - |B| / (W H), the area actually
  kept once the box is clipped (the correction of the reference implementation).

The labels y are one-hot, so y~ are soft targets whose entries sum to one; cross-entropy is linear in the
target, so CE(z, y~) = lambda' CE(z, y_i) + (1 - lambda') CE(z, y_j), which is how a weighted or focal loss
is mixed too. One lambda and one permutation per batch, as in both papers. Every random number comes from
the default generator of the batch's device (seeded by ``train.seed`` and saved in each checkpoint), so a
resumed run mixes exactly the batches it would have mixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F


class Mixed(NamedTuple):
    """A mixed batch: inputs, the two label vectors and the weight lam of the first."""

    x: torch.Tensor
    y_a: torch.Tensor  # (B,) labels of the kept examples
    y_b: torch.Tensor  # (B,) labels of the pasted (partner) examples
    lam: float  # the weight of y_a (for CutMix the kept area)
    kind: str  # "mixup" or "cutmix"

    def targets(self, num_classes: int) -> torch.Tensor:
        """(B, K) soft targets lam onehot(y_a) + (1 - lam) onehot(y_b); each row sums to one."""
        return mix_targets(self.y_a, self.y_b, self.lam, num_classes)


@dataclass(frozen=True)
class MixSettings:
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0  # probability that a batch is mixed at all
    switch_prob: float = 0.5  # with both on: probability of CutMix rather than mixup

    @property
    def on(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0


def mix_targets(y_a: torch.Tensor, y_b: torch.Tensor, lam: float, num_classes: int) -> torch.Tensor:
    """(B, K) soft targets lam onehot(y_a) + (1 - lam) onehot(y_b)."""
    a = F.one_hot(y_a, num_classes).float()
    b = F.one_hot(y_b, num_classes).float()
    return lam * a + (1.0 - lam) * b


def _rand(device: torch.device) -> float:
    return float(torch.rand((), device=device))


def _beta(alpha: float, device: torch.device) -> float:
    """lambda ~ Beta(alpha, alpha), drawn on ``device`` with its default generator."""
    concentration = torch.tensor(float(alpha), device=device)
    return float(torch.distributions.Beta(concentration, concentration).sample())


def cutmix_box(height: int, width: int, lam: float, device: torch.device) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box of side sqrt(1 - lam) (H, W) at a uniform centre, clipped (eq. 2)."""
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    centre = torch.rand(2, device=device)
    cy, cx = int(centre[0] * height), int(centre[1] * width)
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor) -> Mixed:
    """lam x + (1 - lam) x[perm] (eq. 1 of Zhang et al.)."""
    return Mixed(lam * x + (1.0 - lam) * x[perm], y, y[perm], lam, "mixup")


def cutmix(x: torch.Tensor, y: torch.Tensor, box: tuple[int, int, int, int], perm: torch.Tensor) -> Mixed:
    """x with the box of x[perm] pasted in; lam is the fraction of each image that is kept."""
    top, bottom, left, right = box
    height, width = x.shape[-2:]
    out = x.clone()
    out[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    return Mixed(out, y, y[perm], lam, "cutmix")


def mix_batch(x: torch.Tensor, y: torch.Tensor, settings: MixSettings) -> Mixed | None:
    """The batch mixed as ``settings`` say (None: this batch is not mixed).

    Random draws, in order: whether to mix (when prob < 1), which of the two (when both are on),
    lambda, the permutation, and CutMix's box centre.
    """
    s = settings
    if not s.on:
        return None
    device = x.device
    if device.type == "meta":  # FLOP counting: the same work, and no draw from the generators training uses
        return mixup(x, y, 0.5, torch.arange(x.shape[0], device=device))
    if s.prob < 1.0 and _rand(device) >= s.prob:
        return None
    use_cutmix = s.cutmix_alpha > 0
    if s.cutmix_alpha > 0 and s.mixup_alpha > 0:
        use_cutmix = _rand(device) < s.switch_prob
    lam = _beta(s.cutmix_alpha if use_cutmix else s.mixup_alpha, device)
    perm = torch.randperm(x.shape[0], device=device)
    if use_cutmix:
        return cutmix(x, y, cutmix_box(x.shape[-2], x.shape[-1], lam, device), perm)
    return mixup(x, y, lam, perm)
