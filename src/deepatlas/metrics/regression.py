"""Regression metrics of a predictive distribution, from summable per-batch statistics.

Point errors use the predictive mean: RMSE, MAE, R^2 = 1 - SSE / sum (y - ybar)^2 (from sums of
y and y^2, so exact batch by batch). Probabilistic scores, per row, in the target's units:

- NLL, -log p(y | x) in nats (a density for continuous families, a probability for counts);
- CRPS (Matheson & Winkler 1976; Gneiting & Raftery 2007, eq. 20-21),
  CRPS(F, y) = int (F(z) - 1[y <= z])^2 dz = E|X - y| - 1/2 E|X - X'|. Closed forms: normal,
  sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)] with z = (y - mu)/sigma (Gneiting et al. 2005,
  eq. 5); Laplace, b [|z| + exp(-|z|) - 3/4] with z = (y - mu)/b (Jordan, Krueger & Lerch 2019,
  scoringRules). Every other family: the sample estimator
  mean_i |x_i - y| - 1/(2 M^2) sum_ij |x_i - x_j| over M seeded samples (the second term from
  the sorted samples: sum_ij |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i));
- coverage90 and width90: the share of rows inside the central 90% predictive interval
  [q_0.05, q_0.95] and its mean width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import distributions as D

#: every metric a regression task reports, and its direction
DIRECTIONS = {
    "loss": "min", "nll": "min", "rmse": "min", "mae": "min", "r2": "max", "crps": "min",
    "coverage90": "max", "width90": "min",
}

CRPS_SAMPLES = 1000


def crps_normal(mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = (y - mu) / sigma
    normal = D.Normal(torch.zeros_like(z), torch.ones_like(z))
    return sigma * (z * (2 * normal.cdf(z) - 1) + 2 * normal.log_prob(z).exp() - 1 / math.sqrt(math.pi))


def crps_laplace(mu: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = ((y - mu) / b).abs()
    return b * (z + torch.exp(-z) - 0.75)


def crps_samples(draws: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) CRPS from (M, B) samples: E|X - y| - 1/2 E|X - X'|."""
    m = draws.shape[0]
    first = (draws - y[None]).abs().mean(0)
    ranks = torch.arange(1, m + 1, dtype=draws.dtype, device=draws.device)[:, None]
    spread = 2 * ((2 * ranks - m - 1) * draws.sort(0).values).sum(0) / m**2
    return first - 0.5 * spread


def crps(dist: D.Distribution, y: torch.Tensor) -> torch.Tensor:
    """(B,) CRPS of each row's predictive distribution (closed form for normal and Laplace)."""
    if isinstance(dist, D.Normal):
        return crps_normal(dist.loc.double(), dist.scale.double(), y.double())
    if isinstance(dist, D.Laplace):
        return crps_laplace(dist.loc.double(), dist.scale.double(), y.double())
    from ..nn.distributions import seeded_samples

    return crps_samples(seeded_samples(dist, CRPS_SAMPLES), y.double())


def regression_stats(
    mean: torch.Tensor, y: torch.Tensor, nll: torch.Tensor, crps_values: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
    loss: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Summable statistics of one batch (every argument (B,) except ``loss``, the batch's summed loss)."""
    y, mean = y.double(), mean.double()
    error = mean - y
    return {
        "n": torch.tensor(float(len(y)), dtype=torch.float64, device=y.device),
        "loss_sum": loss.double(),
        "nll_sum": nll.double().sum(),
        "se_sum": (error**2).sum(),
        "ae_sum": error.abs().sum(),
        "y_sum": y.sum(),
        "y2_sum": (y**2).sum(),
        "crps_sum": crps_values.double().sum(),
        "covered": ((y >= lower.double()) & (y <= upper.double())).double().sum(),
        "width_sum": (upper.double() - lower.double()).sum(),
    }


def regression_metrics(totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The metrics of :data:`DIRECTIONS` from summed statistics."""
    n = float(totals["n"])
    total = float(totals["y2_sum"]) - float(totals["y_sum"]) ** 2 / n
    sse = float(totals["se_sum"])
    return {
        "loss": float(totals["loss_sum"]) / n,
        "nll": float(totals["nll_sum"]) / n,
        "rmse": math.sqrt(sse / n),
        "mae": float(totals["ae_sum"]) / n,
        "r2": 1 - sse / total if total > 0 else float("nan"),
        "crps": float(totals["crps_sum"]) / n,
        "coverage90": float(totals["covered"]) / n,
        "width90": float(totals["width_sum"]) / n,
    }


__all__ = ["CRPS_SAMPLES", "DIRECTIONS", "crps", "crps_laplace", "crps_normal", "crps_samples", "regression_metrics", "regression_stats"]
