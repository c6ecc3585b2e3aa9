"""Scores of quantile and interval predictions, as pure functions on numpy arrays or tensors.

- **Pinball (check) loss** of a quantile q at level tau for an outcome y (Koenker & Bassett, 1978),
  with e = y - q::

      rho_tau(e) = e * (tau - 1[e < 0]) = max(tau * e, (tau - 1) * e)

  It is tau * e when y lies above q and (1 - tau) * |e| when below. (The course slide's
  ``max(tau e, (1 - tau) e)`` has a sign error: for e < 0 both terms are negative, so it
  returns -min(tau, 1 - tau) |e| < 0 for an over-prediction, not a loss.)
- **Empirical coverage** mean(lower <= y <= upper) and **mean width** mean(upper - lower).
- **Interval score** of a central (1 - alpha) interval [l, u] (Gneiting & Raftery, 2007, eq. 43)::

      S_alpha(l, u; y) = (u - l) + (2 / alpha) (l - y) 1[y < l] + (2 / alpha) (y - u) 1[y > u]

- **CRPS from quantiles**: CRPS(F, y) = 2 * integral_0^1 rho_tau(y - F^{-1}(tau)) dtau
  (Gneiting & Raftery, 2007, eq. 21 in its quantile form; Laio & Tamea, 2007). With K levels it
  is approximated by 2 * the mean pinball loss over the levels (a Riemann sum, good for many
  evenly spread levels; with three levels it is a coarse proxy, comparable between models
  with the same levels only).
- **Binomial band of coverage**: with n exchangeable test rows and true coverage p, the number
  covered is Binomial(n, p); its central 95% range divided by n is the band an observed test
  coverage lies in 95% of the time *for a fixed interval rule*. A split-conformal interval is itself
  random through its m calibration rows: given them its coverage is Beta(k, m + 1 - k) with
  k = ceil((m + 1)(1 - alpha)) (Vovk, 2012; Angelopoulos & Bates, 2021, sec. 3), so the number of
  n test rows covered is Beta-Binomial(n, k, m + 1 - k), a wider band (:func:`conformal_coverage_band`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def pinball(y: torch.Tensor, q: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """Elementwise pinball loss rho_tau(y - q); ``y`` broadcasts against ``q`` (e.g. (B, 1) vs (B, K) with tau (K,))."""
    e = y - q
    return torch.maximum(tau * e, (tau - 1) * e)


def pinball_loss(y: Any, q: Any, tau: float) -> float:
    """Mean pinball loss of quantile predictions ``q`` (n,) at level ``tau`` (equals sklearn's mean_pinball_loss)."""
    return float(pinball_losses(y, np.asarray(q, dtype=np.float64)[:, None], [tau])[0])


def pinball_losses(y: Any, quantiles: Any, levels: Sequence[float]) -> np.ndarray:
    """Mean pinball loss of each level: ``quantiles`` (n, K) at ``levels`` (K,) -> (K,)."""
    y = np.asarray(y, dtype=np.float64)[:, None]
    q, tau = np.asarray(quantiles, dtype=np.float64), np.asarray(levels, dtype=np.float64)[None, :]
    e = y - q
    return np.mean(np.maximum(tau * e, (tau - 1) * e), axis=0)


def mean_pinball(y: Any, quantiles: Any, levels: Sequence[float]) -> float:
    """Pinball loss averaged over rows and levels."""
    return float(np.mean(pinball_losses(y, quantiles, levels)))


def crps_from_quantiles(y: Any, quantiles: Any, levels: Sequence[float]) -> float:
    """CRPS approximated as 2 * the mean pinball loss over ``levels`` (see the module docstring)."""
    return 2.0 * mean_pinball(y, quantiles, levels)


def coverage(y: Any, lower: Any, upper: Any) -> float:
    """Fraction of rows with lower <= y <= upper."""
    y, lo, hi = (np.asarray(a, dtype=np.float64) for a in (y, lower, upper))
    return float(np.mean((lo <= y) & (y <= hi)))


def mean_width(lower: Any, upper: Any) -> float:
    """Mean of upper - lower (inf when any interval is unbounded)."""
    return float(np.mean(np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)))


def interval_score(y: Any, lower: Any, upper: Any, alpha: float) -> float:
    """Mean interval score of central (1 - alpha) intervals (Gneiting & Raftery, 2007, eq. 43); lower is better."""
    y, lo, hi = (np.asarray(a, dtype=np.float64) for a in (y, lower, upper))
    below = (2.0 / alpha) * np.clip(lo - y, 0.0, None)
    above = (2.0 / alpha) * np.clip(y - hi, 0.0, None)
    return float(np.mean((hi - lo) + below + above))


def coverage_band(n: int, nominal: float, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` range of the coverage observed on ``n`` test rows when the true coverage is ``nominal``.

    Binomial(n, nominal) quantiles at (1 - level) / 2 and (1 + level) / 2, divided by n.
    """
    from scipy.stats import binom

    lo = binom.ppf((1 - level) / 2, n, nominal)
    hi = binom.ppf((1 + level) / 2, n, nominal)
    return float(lo / n), float(hi / n)


def conformal_coverage_band(n: int, n_calibration: int, nominal: float, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` range of a split-conformal interval's coverage on ``n`` test rows with
    ``n_calibration`` calibration rows: Beta-Binomial(n, k, m + 1 - k) quantiles / n (module docstring)."""
    from scipy.stats import betabinom

    k = math.ceil((n_calibration + 1) * nominal - 1e-9)
    if k > n_calibration:
        return 1.0, 1.0  # an infinite interval covers everything
    dist = betabinom(n, k, n_calibration + 1 - k)
    return float(dist.ppf((1 - level) / 2) / n), float(dist.ppf((1 + level) / 2) / n)


__all__ = [
    "conformal_coverage_band", "coverage", "coverage_band", "crps_from_quantiles", "interval_score", "mean_pinball", "mean_width", "pinball",
    "pinball_loss", "pinball_losses",
]
