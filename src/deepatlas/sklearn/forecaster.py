"""A forecaster estimator: ``fit(series)``, ``predict(horizon)``, ``predict_interval``, in scikit-learn's spirit.

:class:`DeepForecaster` trains one of the window forecasters (``mlp-forecaster``, ``lstm-forecaster``,
``gru-forecaster``, ``transformer-forecaster``, ``nbeats``, ...) on the whole history of one series
(the ``series-frame`` dataset with no evaluation origin: every window is a training window, the
scaling is fitted on the whole series) and forecasts the ``horizon`` steps after its end. Its
parameters are scikit-learn parameters (``get_params``, ``set_params``, ``clone`` work), the
fitted state ends in ``_``.

Intervals: with ``calibration_windows`` > 0 the last such windows are held out of training and
the run's forecasts are conformalized per step on them (``task.coverage`` = ``coverage``, see
:mod:`deepatlas.tasks.forecast`); ``"auto"`` holds out 20 windows when the series leaves at least
three times as many for training, else none. With ``quantiles`` the network is trained on the
pinball loss and the band of those levels is what gets conformalized (or returned raw, uncalibrated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..errors import DeepAtlasError
from .estimators import estimator_config, train_predictor

VALUE = "__value__"
AUTO_CALIBRATION = 20


class DeepForecaster(BaseEstimator):
    """A deep forecaster of one series.

    ``model``: a registered forecaster; ``context``: input window length; ``horizon``: steps forecast
    (``predict`` may ask for fewer); ``season``: the seasonal period (the MASE scale; None: 1);
    ``normalize``: ``"last"`` (the network forecasts the change from the window's last value) or ``"none"``;
    ``options``: any other recipe key, e.g. ``{"model.hidden": 128}``; ``track``: keep the run in the run store.
    """

    def __init__(
        self, *, model: str = "mlp-forecaster", context: int = 24, horizon: int = 12, season: int | None = None,
        quantiles: Sequence[float] = (), coverage: float = 0.9, calibration_windows: int | str = "auto",
        normalize: str = "last", loss: str = "mae", epochs: int = 100, batch_size: int = 32, lr: float = 1e-3,
        weight_decay: float = 1e-4, random_state: int = 0, device: str = "cpu", track: bool = False,
        runs_dir: str | None = None, options: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.context, self.horizon, self.season = model, context, horizon, season
        self.quantiles, self.coverage, self.calibration_windows = quantiles, coverage, calibration_windows
        self.normalize, self.loss, self.epochs, self.batch_size = normalize, loss, epochs, batch_size
        self.lr, self.weight_decay, self.random_state, self.device = lr, weight_decay, random_state, device
        self.track, self.runs_dir, self.options = track, runs_dir, options

    # ----------------------------------------------------------------- fitting

    @staticmethod
    def _series(y: Any, X: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(values (T,), covariates (T, k)) as float arrays, checked."""
        values = np.asarray(y, dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise ValueError(f"y: expected one series, a 1-D array of values in time order, got shape {values.shape}.")
        covariates = np.zeros((len(values), 0)) if X is None else np.asarray(X, dtype=np.float64)
        covariates = covariates[:, None] if covariates.ndim == 1 else covariates
        if covariates.ndim != 2 or len(covariates) != len(values):
            raise ValueError(f"X: expected (T, k) covariates with T = {len(values)} (one row per step of y), got {covariates.shape}.")
        if not (np.isfinite(values).all() and np.isfinite(covariates).all()):
            raise ValueError("y, X: the series contains NaN or infinity (fill missing steps first).")
        return values, covariates

    def _calibration(self, length: int) -> int:
        if self.calibration_windows != "auto":
            return int(self.calibration_windows)
        windows = length - self.context - self.horizon + 1
        return AUTO_CALIBRATION if windows - AUTO_CALIBRATION - self.horizon + 1 >= 3 * AUTO_CALIBRATION else 0

    def _recipe(self, key: str, covariates: int, calibration: int) -> Any:
        data = {"name": "series-frame", "frame": key, "value": VALUE, "covariates": [f"x{j}" for j in range(covariates)],
                "context": self.context, "horizon": self.horizon, "season": self.season, "test_origins": 0,
                "val_origins": 0, "calibration_windows": calibration, "batch_size": self.batch_size}
        task = {"name": "forecasting", "quantiles": [float(q) for q in self.quantiles], "coverage": self.coverage,
                "normalize": self.normalize, "loss": self.loss}
        return estimator_config(self, data, {"name": self.model}, task)

    def fit(self, y: Any, X: Any = None) -> DeepForecaster:
        """Train on the whole series ``y`` (T,) (and past covariates ``X`` (T, k)); forecasts start after its end."""
        import pandas as pd

        from ..data import register_frame

        values, covariates = self._series(y, X)
        frame = pd.DataFrame({VALUE: values, **{f"x{j}": covariates[:, j] for j in range(covariates.shape[1])}})
        calibration = self._calibration(len(values))
        self.predictor_, self.run_id_ = train_predictor(self, self._recipe(register_frame(frame), covariates.shape[1], calibration))
        self.history_, self.covariates_ = values, covariates
        self.n_calibration_ = calibration
        return self

    def update(self, y: Any, X: Any = None) -> DeepForecaster:
        """Append new observations (and covariates) after the fitted series, without refitting: forecasts then start
        after them. The scaling and the weights stay those of ``fit``."""
        check_is_fitted(self, "predictor_")
        values, covariates = self._series(y, X)
        if covariates.shape[1] != self.covariates_.shape[1]:
            raise ValueError(f"X: {covariates.shape[1]} covariates, the forecaster was fitted with {self.covariates_.shape[1]}.")
        self.history_ = np.concatenate([self.history_, values])
        self.covariates_ = np.concatenate([self.covariates_, covariates])
        return self

    # ----------------------------------------------------------------- forecasts

    def _window(self) -> np.ndarray:
        check_is_fitted(self, "predictor_")
        last = np.column_stack([self.history_, self.covariates_])[-self.context:]
        return last[None]  # (1, context, 1 + k)

    def _steps(self, horizon: int | None) -> int:
        h = self.horizon if horizon is None else int(horizon)
        if not 1 <= h <= self.horizon:
            raise ValueError(f"horizon: {h} steps; this forecaster was fitted for 1..{self.horizon} (refit with horizon={h}).")
        return h

    def _call(self, method: str, *args: Any) -> np.ndarray:
        window = self._window()  # first: an unfitted forecaster raises NotFittedError
        try:
            return np.asarray(getattr(self.predictor_, method)(window, *args), dtype=np.float64)[0]
        except DeepAtlasError as exc:
            raise ValueError(str(exc)) from None

    def predict(self, horizon: int | None = None) -> np.ndarray:
        """(horizon,) point forecasts (the median with quantiles) of the steps after the series' end."""
        return self._call("predict")[: self._steps(horizon)]

    def predict_interval(self, horizon: int | None = None, coverage: float | None = None) -> np.ndarray:
        """(horizon, 2) lower and upper ends: the conformal interval (calibrated at ``coverage``), or, without
        calibration windows, the raw band of the trained quantiles."""
        h = self._steps(horizon)
        c = float(self.coverage if coverage is None else coverage)
        check_is_fitted(self, "predictor_")
        if not self.predictor_.task.can("interval"):
            raise ValueError("predict_interval: this forecaster has neither calibration windows nor quantiles "
                             f"(the series is too short for the automatic {AUTO_CALIBRATION}); refit with "
                             "calibration_windows=K (K >= %d for coverage %g) or quantiles=(0.05, 0.5, 0.95)."
                             % (math.ceil(c / (1 - c) - 1e-9), c))
        return self._call("predict_interval", c)[:h]

    def predict_quantiles(self, quantiles: Sequence[float] = (0.05, 0.5, 0.95), horizon: int | None = None) -> np.ndarray:
        """(horizon, len(quantiles)) forecast quantiles (trained levels; levels between them interpolated)."""
        return self._call("predict_quantiles", [float(q) for q in quantiles])[: self._steps(horizon)]


__all__ = ["DeepForecaster"]
