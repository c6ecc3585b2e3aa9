"""Survival metrics as pure numpy functions, defined exactly as lifelines and scikit-survival define them.

- Kaplan-Meier (Kaplan & Meier 1958): S(t) = prod_{t_k <= t} (1 - d_k / n_k); the censoring
  distribution G (the "reverse" estimator) swaps the roles: G(t) = prod_{t_k <= t} (1 - c_k / (n_k - d_k)),
  events at t_k leaving the risk set before the censorings (scikit-survival's convention).
- Harrell's C (Harrell et al. 1982): over comparable pairs (i an event, T_i < T_j, or T_i = T_j with j
  censored), the share where the earlier subject has the higher risk, ties in risk counting 1/2.
  This is lifelines.utils.concordance_index (which takes predicted *times*: pass -risk there).
- Uno's C (Uno, Cai, Pencina, D'Agostino & Wei 2011, eq. 6): the same pairs, each weighted by
  G(T_i)^-2 and truncated at tau (only T_i < tau), G fitted on the training split
  (sksurv.metrics.concordance_index_ipcw).
- Brier score with inverse probability of censoring weights (Graf, Schmoor, Sauerbrei & Schumacher
  1999, eq. 6): BS(t) = mean_i [S(t|x_i)^2 1(T_i <= t, d_i) / G(T_i) + (1 - S(t|x_i))^2 1(T_i > t) / G(t)];
  the integrated Brier score is its trapezoidal integral over the grid divided by the grid's span
  (sksurv.metrics.brier_score / integrated_brier_score).

Where scikit-survival refuses a time past the last training time with G > 0, G is held at its last
value (the metrics stay defined for a test fold that outlives the training rows).
"""

from __future__ import annotations

import numpy as np


def kaplan_meier(time: np.ndarray, event: np.ndarray, reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(unique times, S at each) of the Kaplan-Meier estimator; ``reverse``: of the censoring distribution."""
    time, event = np.asarray(time, dtype=np.float64), np.asarray(event).astype(bool)
    unique, inverse = np.unique(time, return_inverse=True)
    deaths = np.bincount(inverse, weights=event.astype(np.float64), minlength=len(unique))
    total = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    at_risk = total[::-1].cumsum()[::-1]
    if reverse:  # events at t leave the risk set before the censorings at t
        at_risk, deaths = at_risk - deaths, total - deaths
    ratio = np.divide(deaths, at_risk, out=np.zeros_like(deaths), where=deaths != 0)
    return unique, np.cumprod(1.0 - ratio)


def step_at(times: np.ndarray, values: np.ndarray, t: np.ndarray, before: float = 1.0) -> np.ndarray:
    """A right-continuous step function (value at the last knot <= t; ``before`` left of the first knot)."""
    index = np.searchsorted(np.asarray(times), np.asarray(t, dtype=np.float64), side="right") - 1
    out = np.asarray(values, dtype=np.float64)[np.clip(index, 0, None)]
    return np.where(index < 0, before, out)


def censoring_survival(train_time: np.ndarray, train_event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times, G) of the censoring distribution of the training rows (all ones when nothing is censored)."""
    event = np.asarray(train_event).astype(bool)
    if event.all():
        return np.unique(np.asarray(train_time, dtype=np.float64)), np.ones(len(np.unique(train_time)))
    return kaplan_meier(train_time, event, reverse=True)


def _pairs(time: np.ndarray, event: np.ndarray, risk: np.ndarray, weight: np.ndarray, tied_tol: float = 0.0,
           chunk: int = 512) -> tuple[float, float]:
    """(weighted concordant + ties / 2, weighted comparable pairs) over events i (weight w_i); risks within
    ``tied_tol`` are ties (0: exact equality, as lifelines)."""
    numerator = denominator = 0.0
    rows = np.flatnonzero(event & (weight > 0))
    for lo in range(0, len(rows), chunk):
        i = rows[lo : lo + chunk]
        ti, ri, wi = time[i, None], risk[i, None], weight[i]
        comparable = (time[None] > ti) | ((time[None] == ti) & ~event[None])
        tie = np.abs(risk[None] - ri) <= tied_tol
        concordant = (comparable & (risk[None] < ri) & ~tie).sum(1)
        tied = (comparable & tie).sum(1)
        numerator += float((wi * (concordant + 0.5 * tied)).sum())
        denominator += float((wi * comparable.sum(1)).sum())
    return numerator, denominator


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index of risk scores (higher = earlier event); nan without comparable pairs."""
    time, event, risk = np.asarray(time, np.float64), np.asarray(event).astype(bool), np.asarray(risk, np.float64)
    numerator, denominator = _pairs(time, event, risk, np.ones(len(time)))
    return numerator / denominator if denominator > 0 else float("nan")


def uno_c(train_time: np.ndarray, train_event: np.ndarray, time: np.ndarray, event: np.ndarray, risk: np.ndarray,
          tau: float | None = None, tied_tol: float = 1e-8) -> float:
    """Uno's IPCW concordance index truncated at ``tau`` (None: no truncation), G from the training rows."""
    time, event, risk = np.asarray(time, np.float64), np.asarray(event).astype(bool), np.asarray(risk, np.float64)
    g_times, g = censoring_survival(train_time, train_event)
    g_at = step_at(g_times, g, time)
    with np.errstate(divide="ignore"):
        weight = np.where(event & (g_at > 0), 1.0 / np.square(g_at), 0.0)
    if tau is not None:
        weight = np.where(time < tau, weight, 0.0)
    numerator, denominator = _pairs(time, event, risk, weight, tied_tol)
    return numerator / denominator if denominator > 0 else float("nan")


def brier_score(train_time: np.ndarray, train_event: np.ndarray, time: np.ndarray, event: np.ndarray,
                survival: np.ndarray, times: np.ndarray) -> np.ndarray:
    """IPCW Brier score at each of ``times``; ``survival`` (N, len(times)) holds S(times | x_i)."""
    time, event = np.asarray(time, np.float64), np.asarray(event).astype(bool)
    times, survival = np.asarray(times, np.float64), np.asarray(survival, np.float64).reshape(len(time), -1)
    g_times, g = censoring_survival(train_time, train_event)
    with np.errstate(divide="ignore"):
        inv_y = np.where(step_at(g_times, g, time) > 0, 1.0 / step_at(g_times, g, time), 0.0)
        inv_t = np.where(step_at(g_times, g, times) > 0, 1.0 / step_at(g_times, g, times), 0.0)
    case = (time[:, None] <= times[None]) & event[:, None]
    control = time[:, None] > times[None]
    terms = np.square(survival) * case * inv_y[:, None] + np.square(1.0 - survival) * control * inv_t[None]
    return terms.mean(0)


def integrated_brier_score(train_time: np.ndarray, train_event: np.ndarray, time: np.ndarray, event: np.ndarray,
                           survival: np.ndarray, times: np.ndarray) -> float:
    """The Brier score integrated over ``times`` (trapezoids) divided by their span; needs two or more times."""
    times = np.asarray(times, np.float64)
    if len(times) < 2:
        return float("nan")
    scores = brier_score(train_time, train_event, time, event, survival, times)
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))
