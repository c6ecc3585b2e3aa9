"""statsmodels' generalised linear models (Nelder & Wedderburn 1972; McCullagh & Nelder 1989) as the
classical baseline of the distributional regression task, family chosen from ``task.distribution``:

- normal, normal-fixed, laplace, student-t, gaussian-mixture -> Gaussian (identity link: OLS), scale
  sigma^2 = SSE / n (the MLE, as ``normal-fixed`` fits its global scale);
- poisson -> Poisson (log link);
- negative-binomial -> NB2 (log link): the dispersion alpha by maximum likelihood
  (``statsmodels.discrete.NegativeBinomial``), then the GLM NegativeBinomial(alpha) for the mean;
- gamma -> Gamma (log link), dispersion phi by statsmodels' Pearson estimate (``res.scale``);
- log-normal -> Gaussian on log y (NLL + log y, the Jacobian).

The design matrix is the network's columns (standardised numbers, missing-value indicators) with
one-hot category codes (first level dropped) and an intercept; the fit uses the same rows as the
network's training (train + validation). The test NLL is statsmodels' own ``family.loglike_obs``;
the other metrics (RMSE, MAE, R^2, CRPS, 90% interval) come from the same code as the task's, applied
to the GLM's predictive distribution, so the names and definitions match the task's test metrics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .boosting import _fit_rows
from .registry import register_baseline

GAUSSIAN = ("normal", "normal-fixed", "laplace", "student-t", "gaussian-mixture")
SERVED = (*GAUSSIAN, "poisson", "negative-binomial", "gamma", "log-normal")


def design(x: np.ndarray, meta: Any, levels: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """[1, numbers, one-hot codes without the first level]; ``levels`` from the fitting rows."""
    n_num = int(meta["num_numeric"])
    numbers, codes = x[:, :n_num], x[:, n_num:].astype(np.int64)
    if levels is None:
        levels = [np.unique(codes[:, j]) for j in range(codes.shape[1])]
    dummies = [(codes[:, [j]] == lv[None, 1:]).astype(np.float64) for j, lv in enumerate(levels)]
    return np.column_stack([np.ones(len(x)), numbers, *dummies]), levels


def _distribution(name: str, mu: np.ndarray, scale: float, alpha: float = 1.0) -> Any:
    from torch import distributions as D

    from ..nn.distributions import negative_binomial

    m = torch.as_tensor(mu, dtype=torch.float64)
    if name in GAUSSIAN:
        return D.Normal(m, torch.full_like(m, math.sqrt(scale)))
    if name == "poisson":
        return D.Poisson(m, validate_args=False)
    if name == "negative-binomial":
        return negative_binomial(m, torch.full_like(m, alpha))
    if name == "gamma":
        return D.Gamma(torch.full_like(m, 1 / scale), 1 / (scale * m))
    return D.LogNormal(m, torch.full_like(m, math.sqrt(scale)))


def glm(data: Any, task: Any) -> dict[str, float]:
    """Test metrics of the GLM of the task's family, fitted on the fold's training rows."""
    import statsmodels.api as sm
    from statsmodels.discrete.discrete_model import NegativeBinomial

    from ..tasks.regression import distribution_stats

    name = task.config.distribution
    if name not in SERVED:
        raise ConfigError(f"--baseline glm: no GLM for task.distribution={name} (it serves: {', '.join(SERVED)}).")
    x, y = _fit_rows(data)
    x_test, y_test = data.arrays("test")
    design_fit, levels = design(x, data.meta)
    design_test, _ = design(x_test, data.meta, levels)
    y, y_test = y.astype(np.float64), y_test.astype(np.float64)
    log = sm.families.links.Log()
    alpha = 1.0
    if name in GAUSSIAN or name == "log-normal":
        family, endog, endog_test = sm.families.Gaussian(), y, y_test
        if name == "log-normal":
            endog, endog_test = np.log(y), np.log(y_test)
    elif name == "poisson":
        family, endog, endog_test = sm.families.Poisson(log), y, y_test
    elif name == "negative-binomial":
        nb = NegativeBinomial(y, design_fit, loglike_method="nb2").fit(disp=0, maxiter=200)
        alpha = float(nb.params[-1])
        family, endog, endog_test = sm.families.NegativeBinomial(log, alpha=alpha), y, y_test
    else:
        family, endog, endog_test = sm.families.Gamma(log), y, y_test
    result = sm.GLM(endog, design_fit, family=family).fit()
    mu = result.predict(design_test)
    scale = float(np.mean((endog - result.fittedvalues) ** 2)) if isinstance(family, sm.families.Gaussian) else float(result.scale)
    nll = -family.loglike_obs(endog_test, mu, scale=scale if name not in ("poisson", "negative-binomial") else 1.0)
    if name == "log-normal":
        nll = nll + endog_test  # density of y = density of log y / y
    dist = _distribution(name, mu, scale, alpha)
    target = torch.as_tensor(y_test)
    stats = distribution_stats(dist, target, lambda d, t: -d.log_prob(t), task.head.family.discrete)
    stats["nll_sum"] = torch.tensor(float(np.sum(nll)), dtype=torch.float64)
    stats["loss_sum"] = stats["nll_sum"]
    return task.reduce(stats)


register_baseline("glm", glm, ("tabular",), doc="statsmodels GLM of the task's family (Gaussian/OLS, Poisson, NB2, Gamma)")
