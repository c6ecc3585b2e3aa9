"""The scikit-learn estimators: parameters -> a recipe -> :func:`deepatlas.train` -> a Predictor."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import DeepAtlasError

TARGET, EVENT = "__target__", "__event__"


#: the parameters every estimator shares, with their defaults
COMMON: dict[str, Any] = {
    "model": "tabular-mlp", "depth": 3, "width": 256, "dropout": 0.1, "epochs": 100, "batch_size": 128,
    "lr": 1e-3, "weight_decay": 1e-4, "val_fraction": 0.1, "random_state": 0, "device": "cpu", "track": True,
    "runs_dir": None, "options": None,
}


def estimator_config(est: Any, data: Mapping[str, Any], model: Mapping[str, Any], task: Mapping[str, Any]) -> Any:
    """The recipe of an estimator's run: its data, model and task sections, AdamW + cosine from its ``lr``,
    ``weight_decay``, ``epochs``, ``random_state``, ``device``, and any other key from ``options``."""
    from ..config import Config

    raw: dict[str, Any] = {
        "recipe": f"sklearn-{type(est).__name__.lower()}", "data": dict(data), "model": dict(model), "task": dict(task),
        "optim": {"name": "adamw", "lr": est.lr, "weight_decay": est.weight_decay},
        "schedule": {"name": "cosine"},
        "train": {"epochs": est.epochs, "seed": est.random_state, "device": est.device, "checkpoint_every": 0, "test": False},
    }
    for dotted, value in (est.options or {}).items():  # any other recipe key: {"model.n_blocks": 3}
        section, _, name = str(dotted).partition(".")
        raw.setdefault(section, {})[name] = value
    return Config.from_dict(raw)


def train_predictor(est: Any, config: Any) -> tuple[Any, str | None]:
    """Train ``config`` as ``est`` says (``track``: in the run store ``runs_dir``, else in a temporary folder removed
    afterwards); (the run's Predictor, its id when tracked). deepatlas errors become ValueError, as scikit-learn expects."""
    import deepatlas

    folder = None if est.track else tempfile.mkdtemp(prefix="deepatlas-sklearn-")
    try:
        run = deepatlas.train(config, runs_dir=est.runs_dir if est.track else folder, progress=False)
        if run.status != "completed":
            raise RuntimeError(f"deepatlas run {run.id} {run.status}: {run.summary.get('reason', '')}")
        return deepatlas.load(run, device=est.device), (run.id if est.track else None)
    except DeepAtlasError as exc:
        if isinstance(exc, ValueError):
            raise
        raise ValueError(str(exc)) from None
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _with_params(**own: Any) -> Any:
    """A class decorator giving an explicit ``__init__(self, *, <own params>, <COMMON params>)``.

    scikit-learn reads an estimator's parameters from its ``__init__`` signature (``get_params``,
    ``clone``, ``GridSearchCV``) and forbids ``**kwargs``; the shared ones are declared once, here.
    """
    import inspect

    defaults = {**own, **COMMON}

    def __init__(self: Any, **params: Any) -> None:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected parameter {unknown[0]!r} (parameters: {', '.join(defaults)})")
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value) for name, value in defaults.items()]
    )

    def decorate(cls: type) -> type:
        cls.__init__ = __init__  # type: ignore[misc]
        return cls

    return decorate


class _DeepatlasEstimator(BaseEstimator):
    """Shared parameters (``COMMON``) and the fit/predict plumbing; subclasses name the task and shape the target.

    ``model``: a tabular model (tabular-mlp, tabular-resnet, ft-transformer); ``depth``, ``width``,
    ``dropout``: the MLP's; ``options``: any other recipe key, e.g. ``{"model.n_blocks": 3}``;
    ``track``: keep the run in the run store (``runs_dir``, default the usual one).
    """

    _task: str = ""

    # ----------------------------------------------------------------- scikit-learn's conventions

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # a missing value is imputed and gets an indicator column
        tags.non_deterministic = False
        return tags

    def _frame(self, X: Any, reset: bool) -> Any:
        """The rows as a DataFrame: a DataFrame keeps its columns (and categories), an array becomes x0, x1, ..."""
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if len(X) == 0:
                raise ValueError("Found array with 0 sample(s) (shape=(0, ...)) while a minimum of 1 is required.")
            frame = X.reset_index(drop=True)
            frame.columns = [str(c) for c in frame.columns]
            return frame
        array = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=np.float64)
        return pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])

    def _task_options(self) -> dict[str, Any]:
        return {}

    def _recipe(self, key: str, extra_data: Mapping[str, Any]) -> Any:
        model = {"name": self.model}
        if self.model in ("tabular-mlp",):
            model.update(depth=self.depth, width=self.width, dropout=self.dropout)
        data = {"name": "dataframe", "frame": key, "target": TARGET, "test_fraction": 0.0,
                "val_fraction": self.val_fraction, "batch_size": self.batch_size, "split_seed": self.random_state, **extra_data}
        return estimator_config(self, data, model, {"name": self._task, **self._task_options()})

    def _fit_frame(self, frame: Any, extra_data: Mapping[str, Any]) -> Any:
        from ..data import register_frame

        if len(frame) < 2:
            raise ValueError(f"n_samples={len(frame)}: a deepatlas estimator needs at least 2 samples to fit.")
        self.predictor_, self.run_id_ = train_predictor(self, self._recipe(register_frame(frame), extra_data))
        return self

    def _fit_columns(self, frame: Any, targets: Mapping[str, Any], extra_data: Mapping[str, Any]) -> Any:
        """Fit on ``frame`` with the target columns ``targets`` (each as long as the rows)."""
        for values in targets.values():
            if len(values) != len(frame):
                raise ValueError(f"X has {len(frame)} samples but y has {len(values)}.")
        return self._fit_frame(frame.assign(**targets), extra_data)

    def _call(self, method: str, X: Any, *args: Any) -> Any:
        """The fitted Predictor's ``method`` on the rows ``X``; deepatlas errors become ValueError, as scikit-learn expects."""
        check_is_fitted(self, "predictor_")
        frame = self._frame(X, reset=False)
        try:
            return getattr(self.predictor_, method)(frame, *args)
        except DeepAtlasError as exc:
            raise ValueError(str(exc)) from None

    def predict(self, X: Any) -> np.ndarray:
        """The point prediction of each row (a mean, a median, a risk score)."""
        return np.asarray(self._call("predict", X), dtype=np.float64).reshape(-1)


def _real_target(y: Any) -> np.ndarray:
    from sklearn.utils.validation import column_or_1d

    y = column_or_1d(y, warn=True).astype(np.float64)
    if not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or infinity.")
    return y


@_with_params()
class TabularClassifier(ClassifierMixin, _DeepatlasEstimator):
    """A network classifier of table rows (cross-entropy; ``options`` for e.g. ``{"task.focal_gamma": 2}``)."""

    _task = "classification"

    def _task_options(self) -> dict[str, Any]:
        return {"label_smoothing": 0.0}

    def fit(self, X: Any, y: Any) -> TabularClassifier:
        from sklearn.utils.multiclass import check_classification_targets, unique_labels
        from sklearn.utils.validation import column_or_1d

        frame = self._frame(X, reset=True)
        y = column_or_1d(y, warn=True)
        if len(y) != len(frame):
            raise ValueError(f"X has {len(frame)} samples but y has {len(y)}.")
        check_classification_targets(y)
        self.classes_ = unique_labels(y)
        if len(self.classes_) < 2:
            raise ValueError(f"Classifier can't train when only one class is present ({self.classes_[0]!r}).")
        codes = np.searchsorted(self.classes_, y)
        return self._fit_columns(frame, {TARGET: [str(c) for c in codes]}, {"target_type": "class"})

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, n_classes) probabilities, columns in the order of ``classes_``."""
        probabilities = self._call("predict_proba", X)
        names = self.predictor_.class_names  # "0", "1", ... in numeric order: the codes of classes_
        order = np.argsort([int(n) for n in names])
        return probabilities[:, order]

    def predict(self, X: Any) -> np.ndarray:
        probabilities = self.predict_proba(X)  # first: an unfitted estimator raises NotFittedError
        return self.classes_[probabilities.argmax(axis=1)]


@_with_params(distribution="normal", loss="nll")
class TabularRegressor(RegressorMixin, _DeepatlasEstimator):
    """A network regressor of table rows: the mean of a ``distribution`` (default: normal with learnt variance)."""

    _task = "regression"

    def _task_options(self) -> dict[str, Any]:
        return {"distribution": self.distribution, "loss": self.loss}

    def fit(self, X: Any, y: Any) -> Any:
        frame = self._frame(X, reset=True)
        return self._fit_columns(frame, {TARGET: _real_target(y)}, {"target_type": "real"})


@_with_params(distribution="normal", loss="nll")
class DistributionalRegressor(TabularRegressor):
    """A network that predicts the parameters of ``distribution`` and is fitted by its negative log-likelihood."""

    def predict_distribution(self, X: Any) -> Any:
        """The predictive distribution of each row (``torch.distributions``, batch shape (N,))."""
        return self._call("predict_distribution", X)

    def predict_quantiles(self, X: Any, quantiles: Any = (0.05, 0.5, 0.95)) -> np.ndarray:
        return self._call("predict_quantiles", X, quantiles)

    def predict_interval(self, X: Any, coverage: float = 0.9) -> np.ndarray:
        """(N, 2) central intervals of the predictive distribution at nominal ``coverage``."""
        return self._call("predict_interval", X, coverage)


@_with_params(quantiles=(0.05, 0.5, 0.95), coverage=0.9, calibration_fraction=0.25)
class QuantileRegressor(RegressorMixin, _DeepatlasEstimator):
    """Non-crossing quantiles and conformalized quantile-regression intervals (Romano et al. 2019).

    ``calibration_fraction`` of the rows is held out of training to conformalize the interval at
    ``coverage``.
    """

    _task = "quantile-regression"

    def _task_options(self) -> dict[str, Any]:
        return {"quantiles": list(self.quantiles), "coverage": self.coverage}

    def fit(self, X: Any, y: Any) -> Any:
        frame = self._frame(X, reset=True)
        extra = {"target_type": "real", "calibration_fraction": self.calibration_fraction}
        return self._fit_columns(frame, {TARGET: _real_target(y)}, extra)

    def predict_quantiles(self, X: Any, quantiles: Any = None) -> np.ndarray:
        return self._call("predict_quantiles", X, tuple(quantiles if quantiles is not None else self.quantiles))

    def predict_interval(self, X: Any, coverage: float | None = None) -> np.ndarray:
        """(N, 2) conformalized intervals at the calibrated ``coverage``."""
        return self._call("predict_interval", X, float(coverage if coverage is not None else self.coverage))


@_with_params(method="deepsurv")
class SurvivalRegressor(_DeepatlasEstimator):
    """A survival model of table rows: ``method`` deepsurv (Cox), logistic-hazard or deephit.

    ``y``: (N, 2) durations and event flags (1: event, 0: censored), or scikit-survival's structured
    array of (event, time). ``predict`` is a risk score (higher: earlier events); ``score`` is
    Harrell's concordance index.
    """

    @property
    def _task(self) -> str:  # type: ignore[override]
        return self.method

    def fit(self, X: Any, y: Any) -> SurvivalRegressor:
        frame = self._frame(X, reset=True)
        duration, event = survival_target(y)
        return self._fit_columns(frame, {TARGET: duration, EVENT: event}, {"target_type": "survival", "event": EVENT})

    def predict_survival_function(self, X: Any, times: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(times, S) with S (N, len(times)) the survival probabilities S(t | x)."""
        return self._call("predict_survival_function", X, times)

    def score(self, X: Any, y: Any) -> float:
        """Harrell's concordance index of the risk scores."""
        from ..metrics.survival import harrell_c

        duration, event = survival_target(y)
        return float(harrell_c(duration, event, self.predict(X)))


def survival_target(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """(durations, events) from an (N, 2) array or a structured array with an event and a time field."""
    array = np.asarray(y)
    if array.dtype.names:
        names = array.dtype.names
        event_name = next((n for n in names if array[n].dtype == bool), names[0])
        time_name = next(n for n in names if n != event_name)
        return array[time_name].astype(np.float64), array[event_name].astype(np.float64)
    if array.ndim == 1:  # durations alone: every event observed (no censoring)
        duration = array.astype(np.float64)
        return duration, np.ones_like(duration)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"y: expected (N, 2) durations and events, a structured (event, time) array or (N,) uncensored durations, "
            f"got shape {array.shape}."
        )
    return array[:, 0].astype(np.float64), array[:, 1].astype(np.float64)
