"""Split conformal prediction intervals around any regressor, and conformalized quantile regression.

**Split conformal** (Lei, G'Sell, Rinaldo, Tibshirani & Wasserman, 2018, Algorithm 2): fit a point
predictor mu on training rows; on n calibration rows compute the scores R_i = |y_i - mu(x_i)|; with
k = ceil((n + 1)(1 - alpha)) the correction Q is the k-th smallest score and the interval is
[mu(x) - Q, mu(x) + Q]. For exchangeable rows P(y in C(x)) >= 1 - alpha (and < 1 - alpha + 1/(n + 1)
without ties). When k > n (too few calibration rows for the level) Q is infinite.

**Conformalized quantile regression** (Romano, Patterson & Candes, 2019, eqs. 6-7): with lower and
upper quantile predictions q_lo, q_hi the scores are E_i = max(q_lo(x_i) - y_i, y_i - q_hi(x_i)),
Q is their k-th smallest value and the interval is [q_lo(x) - Q, q_hi(x) + Q] (Q may be negative:
the band then shrinks). The asymmetric variant (their Theorem 2) corrects each side on its own
scores, q_lo - y and y - q_hi, each at level 1 - alpha / 2.

The k-th smallest score equals ``np.quantile(scores, k / n, method="lower")`` (MAPIE 1.x's
convention). ``method="higher"`` at the same level picks the (k + 1)-th when k < n, one order
statistic more conservative than the theorem needs; we use the exact order statistic.

:class:`SplitConformalRegressor` wraps any object with ``fit(X, y)`` / ``predict(X)`` (the
scikit-learn API). :func:`coverage_study` measures a deepatlas recipe's conformal intervals over
many random splits next to MAPIE's around a scikit-learn regressor on the same rows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

log = logging.getLogger(__name__)


def conformal_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)): the rank of the calibration score that is the conformal quantile."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha: must lie strictly between 0 and 1, got {alpha} (alpha = 1 - coverage).")
    # a hair below the exact product so that (n + 1)(1 - alpha) = 90.00000000000001 (floating noise) stays 90
    return math.ceil((n + 1) * (1.0 - alpha) - 1e-9)


def conformal_quantile(scores: Any, alpha: float) -> float:
    """The k-th smallest of ``scores`` with k = ceil((n + 1)(1 - alpha)); +inf when k > n."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if s.size == 0:
        raise ConfigError("conformal: no calibration scores (the calibration split is empty).")
    k = conformal_rank(len(s), alpha)
    return math.inf if k > len(s) else float(s[k - 1])


def absolute_residual_scores(y: Any, prediction: Any) -> np.ndarray:
    """Split-conformal scores |y - mu(x)|."""
    return np.abs(np.asarray(y, dtype=np.float64) - np.asarray(prediction, dtype=np.float64))


def split_conformal_interval(prediction: Any, correction: float) -> tuple[np.ndarray, np.ndarray]:
    """[mu(x) - Q, mu(x) + Q]."""
    mu = np.asarray(prediction, dtype=np.float64)
    return mu - correction, mu + correction


def cqr_scores(y: Any, lower: Any, upper: Any) -> np.ndarray:
    """CQR scores max(q_lo - y, y - q_hi) (Romano et al., 2019, eq. 6)."""
    y, lo, hi = (np.asarray(a, dtype=np.float64) for a in (y, lower, upper))
    return np.maximum(lo - y, y - hi)


def cqr_correction(y: Any, lower: Any, upper: Any, alpha: float, symmetric: bool = True) -> tuple[float, float]:
    """(Q_lo, Q_hi) of CQR; the interval is [q_lo - Q_lo, q_hi + Q_hi].

    ``symmetric``: one Q = the conformal quantile of max(q_lo - y, y - q_hi) at 1 - alpha on both
    sides (Romano et al., eq. 7). Otherwise each side separately at 1 - alpha / 2 (their Theorem 2).
    """
    if symmetric:
        q = conformal_quantile(cqr_scores(y, lower, upper), alpha)
        return q, q
    y, lo, hi = (np.asarray(a, dtype=np.float64) for a in (y, lower, upper))
    return conformal_quantile(lo - y, alpha / 2), conformal_quantile(y - hi, alpha / 2)


def cqr_interval(lower: Any, upper: Any, correction: tuple[float, float] | float) -> tuple[np.ndarray, np.ndarray]:
    """[q_lo - Q_lo, q_hi + Q_hi] (a single Q: the symmetric correction)."""
    q_lo, q_hi = correction if isinstance(correction, tuple) else (correction, correction)
    return np.asarray(lower, dtype=np.float64) - q_lo, np.asarray(upper, dtype=np.float64) + q_hi


class SplitConformalRegressor:
    """Split-conformal intervals around any regressor with ``fit``/``predict`` (Lei et al., 2018).

    >>> scr = SplitConformalRegressor(GradientBoostingRegressor(), coverage=0.9)
    >>> scr.fit(X_train, y_train, X_cal, y_cal)            # fit on train, calibrate on cal
    >>> lower, upper = scr.predict_interval(X_test)

    ``prefit=True``: the estimator is already fitted, ``fit`` only calibrates (X_train, y_train may be None).
    """

    def __init__(self, estimator: Any, coverage: float = 0.9, prefit: bool = False) -> None:
        if not 0.0 < coverage < 1.0:
            raise ConfigError(f"coverage: must lie strictly between 0 and 1, got {coverage}.")
        self.estimator, self.coverage, self.prefit = estimator, float(coverage), prefit
        self.correction_: float | None = None

    def fit(self, X_train: Any, y_train: Any, X_cal: Any, y_cal: Any) -> SplitConformalRegressor:
        if not self.prefit:
            self.estimator.fit(X_train, y_train)
        return self.calibrate(X_cal, y_cal)

    def calibrate(self, X_cal: Any, y_cal: Any) -> SplitConformalRegressor:
        """The correction Q from calibration rows the estimator never saw."""
        scores = absolute_residual_scores(y_cal, self.estimator.predict(X_cal))
        self.correction_ = conformal_quantile(scores, 1.0 - self.coverage)
        self.n_calibration_ = len(scores)
        if math.isinf(self.correction_):
            log.warning("conformal: %d calibration rows are too few for coverage %.3f; the intervals are infinite",
                        len(scores), self.coverage)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict(X), dtype=np.float64)

    def predict_interval(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n,)."""
        if self.correction_ is None:
            raise ConfigError("SplitConformalRegressor: call fit (or calibrate) before predict_interval.")
        return split_conformal_interval(self.predict(X), self.correction_)


# --------------------------------------------------------------------------- reproduction over many splits


def coverage_study(
    recipe: str, seeds: Sequence[int] = range(20), overrides: Sequence[str] = (), *,
    baseline: Callable[[], Any] | None = None, runs_dir: Any = None, coverage: float = 0.9,
) -> dict[str, Any]:
    """Test coverage and width of a quantile-regression recipe's conformal intervals over random splits.

    For each seed trains ``recipe`` with ``data.split_seed=seed`` (and ``overrides``; the recipe must
    hold out ``data.calibration_fraction`` > 0, else a ConfigError; the test split is always evaluated), reads the test metrics of its
    conformalized interval, and on the same rows fits ``baseline()`` (default: scikit-learn's
    GradientBoostingRegressor) on train + val, then MAPIE's split conformal (absolute residuals)
    and MAPIE's CQR with three quantile gradient-boosting models, both conformalized on the
    calibration split. Returns per-split rows and their means, the binomial 95% band of each
    split's test size (:func:`deepatlas.metrics.intervals.coverage_band`) and the wider
    Beta-Binomial band that also counts the calibration rows' randomness
    (:func:`~deepatlas.metrics.intervals.conformal_coverage_band`), and how many splits of each
    method lie inside each band (``inside``).
    """
    import deepatlas
    from deepatlas.data import load_dataset

    from .config import load_recipe
    from .errors import ConfigError
    from .metrics.intervals import conformal_coverage_band, coverage_band, mean_width
    from .metrics.intervals import coverage as covered

    overrides = [*overrides, "train.test=true", f"task.coverage={coverage}"]
    config = load_recipe(recipe, overrides)
    if config.task.name != "quantile-regression" or not getattr(config.data.options, "calibration_fraction", 0.0) > 0:
        raise ConfigError(
            f"{recipe}: a coverage study needs task.name=quantile-regression and data.calibration_fraction > 0 "
            "(the rows that conformalize the interval), e.g. data.calibration_fraction=0.3."
        )
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        run = deepatlas.train(recipe, [*overrides, f"data.split_seed={seed}"], runs_dir=runs_dir, progress=False)
        test = run.summary["eval"]["test"]
        seconds = time.perf_counter() - start
        data = load_dataset(run.config.data)
        fit_x, fit_y = (np.concatenate(parts) for parts in zip(data.arrays("train"), data.arrays("val"), strict=True))
        cal_x, cal_y = data.arrays("calibration")
        test_x, test_y = data.arrays("test")
        mapie = _mapie_intervals(fit_x, fit_y, cal_x, cal_y, test_x, coverage, baseline)
        lo, hi = coverage_band(len(test_y), coverage)
        wide = conformal_coverage_band(len(test_y), len(cal_y), coverage)
        row = {"seed": seed, "n_test": len(test_y), "n_calibration": len(cal_y), "band": (lo, hi), "conformal_band": wide,
               "coverage": test["conformal_coverage"], "width": test["conformal_width"],
               "raw_coverage": test["coverage"], "raw_width": test["width"], "seconds": seconds}
        for name, (low, up) in mapie.items():
            row[f"{name}_coverage"], row[f"{name}_width"] = covered(test_y, low, up), mean_width(low, up)
        for name in ("", "mapie_split_", "mapie_cqr_"):
            row[f"{name}inside_band"] = lo <= row[f"{name}coverage"] <= hi
            row[f"{name}inside_conformal_band"] = wide[0] <= row[f"{name}coverage"] <= wide[1]
        rows.append(row)
        log.info("coverage study %s seed %d: %s", recipe, seed, row)
    keys = [k for k in rows[0] if k.endswith(("coverage", "width")) or k == "seconds"]
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    inside = {k: sum(r[k] for r in rows) for k in rows[0] if "inside" in k}
    return {"recipe": recipe, "coverage": coverage, "splits": rows, "mean": means, "inside": inside,
            "all_inside_band": all(r["inside_band"] for r in rows)}


def _mapie_intervals(fit_x: np.ndarray, fit_y: np.ndarray, cal_x: np.ndarray, cal_y: np.ndarray, test_x: np.ndarray,
                     coverage: float, baseline: Callable[[], Any] | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MAPIE's split conformal around ``baseline()`` and its symmetric CQR, both prefit on the same rows."""
    from mapie.regression import ConformalizedQuantileRegressor
    from mapie.regression import SplitConformalRegressor as MapieSCR
    from sklearn.ensemble import GradientBoostingRegressor

    point = (baseline or (lambda: GradientBoostingRegressor(random_state=0)))().fit(fit_x, fit_y)
    scr = MapieSCR(point, confidence_level=coverage, prefit=True).conformalize(cal_x, cal_y)
    _, bounds = scr.predict_interval(test_x)
    alpha = 1 - coverage
    models = [GradientBoostingRegressor(loss="quantile", alpha=a, random_state=0).fit(fit_x, fit_y)
              for a in (alpha / 2, 1 - alpha / 2, 0.5)]
    cqr = ConformalizedQuantileRegressor(models, confidence_level=coverage, prefit=True).conformalize(cal_x, cal_y)
    _, cqr_bounds = cqr.predict_interval(test_x, symmetric_correction=True)
    return {"mapie_split": (bounds[:, 0, 0], bounds[:, 1, 0]), "mapie_cqr": (cqr_bounds[:, 0, 0], cqr_bounds[:, 1, 0])}


__all__ = [
    "SplitConformalRegressor", "absolute_residual_scores", "conformal_quantile", "conformal_rank", "coverage_study",
    "cqr_correction", "cqr_interval", "cqr_scores", "split_conformal_interval",
]
