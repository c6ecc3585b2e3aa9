"""scikit-learn's histogram gradient boosting (Ke et al. 2017, LightGBM's algorithm): what a statistician
would otherwise fit to a table, scored with the metrics of the recipe's task.

The model sees the same preprocessed columns as the network (standardised numbers, missing-value
indicators, category codes declared categorical) and the same training rows (train + validation:
boosting stops early on its own internal split, ``early_stopping="auto"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import register_baseline


def _fit_rows(data: Any) -> tuple[np.ndarray, np.ndarray]:
    parts = [data.arrays(split) for split in ("train", "val") if split in data.splits and len(data.split(split))]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _categorical_mask(data: Any) -> np.ndarray:
    n_num, n_cat = int(data.meta["num_numeric"]), len(data.meta["cardinalities"])
    return np.array([False] * n_num + [True] * n_cat, dtype=bool)


def hgb(data: Any, task: Any, seed: int = 0) -> dict[str, float]:
    """Test metrics of a HistGradientBoosting{Classifier,Regressor} fitted on the fold's training rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x, y = _fit_rows(data)
    x_test, y_test = data.arrays("test")
    mask = _categorical_mask(data)
    categorical = mask if mask.any() else None
    if data.meta["target_type"] == "class":
        model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=seed).fit(x, y.astype(int))
        return classification_scores(model.predict_proba(x_test), y_test.astype(int), int(data.meta["num_classes"]))
    model = HistGradientBoostingRegressor(categorical_features=categorical, random_state=seed).fit(x, y)
    return regression_scores(model.predict(x_test), y_test)


def classification_scores(probabilities: np.ndarray, y: np.ndarray, classes: int) -> dict[str, float]:
    """accuracy, macro-F1 and NLL (nats per example) of predicted class probabilities."""
    from sklearn.metrics import f1_score

    full = np.zeros((len(y), classes))
    full[:, : probabilities.shape[1]] = probabilities
    predicted = full.argmax(1)
    nll = float(-np.log(np.clip(full[np.arange(len(y)), y], 1e-12, None)).mean())
    return {"accuracy": float((predicted == y).mean()), "macro_f1": float(f1_score(y, predicted, average="macro")), "nll": nll}


def regression_scores(prediction: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R^2 of point predictions."""
    error = prediction - y
    total = ((y - y.mean()) ** 2).sum()
    return {
        "rmse": float(np.sqrt((error**2).mean())), "mae": float(np.abs(error).mean()),
        "r2": float(1 - (error**2).sum() / total) if total > 0 else float("nan"),
    }


register_baseline("hgb", hgb, ("labelled", "tabular"), doc="scikit-learn HistGradientBoostingClassifier / Regressor")
