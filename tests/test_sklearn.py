"""The scikit-learn face: scikit-learn's own estimator checks, Pipeline / cross_val_score / GridSearchCV,
DataFrames with categorical columns, and every fit an ordinary run (issue 15)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

import deepatlas
from deepatlas.sklearn import (
    DistributionalRegressor,
    QuantileRegressor,
    SurvivalRegressor,
    TabularClassifier,
    TabularRegressor,
)

FAST = {"epochs": 5, "width": 16, "depth": 1, "batch_size": 32, "lr": 1e-2, "track": False}
REGRESS = {**FAST, "epochs": 10, "width": 32}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@parametrize_with_checks([
    TabularClassifier(**FAST), TabularRegressor(**REGRESS), DistributionalRegressor(distribution="student-t", **REGRESS),
    QuantileRegressor(**{**REGRESS, "epochs": 20}), SurvivalRegressor(**FAST),
])
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_in_a_pipeline_cross_val_score_and_grid_search() -> None:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    pipeline = make_pipeline(FunctionTransformer(np.log1p), TabularClassifier(**{**FAST, "epochs": 15}))
    scores = cross_val_score(pipeline, x, y, cv=3)
    assert scores.mean() > 0.9
    search = GridSearchCV(TabularClassifier(**FAST), {"width": [8, 16]}, cv=2).fit(x, y)
    assert search.best_params_["width"] in (8, 16) and search.best_score_ > 0.85


def test_dataframes_keep_categorical_columns_and_each_fit_is_a_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "colour": rng.choice(["red", "green", "blue"], size=200)})
    y = np.where((frame["colour"] == "red") | (frame["x"] > 1), "hot", "cold")
    model = TabularClassifier(**{**FAST, "epochs": 40, "track": True, "runs_dir": str(tmp_path)}).fit(frame, y)
    assert list(model.feature_names_in_) == ["x", "colour"]
    assert model.predictor_.preprocessor.categorical == ("colour",)
    assert model.score(frame, y) > 0.9
    run = deepatlas.open_run(model.run_id_, runs_dir=tmp_path)
    assert run.status == "completed" and run.config.task.name == "classification"
    assert set(model.predict(frame.head(5))) <= {"hot", "cold"}
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame.rename(columns={"x": "z"}))


def test_regressors_predict_distributions_quantiles_and_intervals() -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    model = DistributionalRegressor(**{**REGRESS, "epochs": 40}).fit(x_train, y_train)
    assert model.score(x_test, y_test) > 0.3  # R^2; OLS reaches ~0.36 on this split
    distribution = model.predict_distribution(x_test)
    assert distribution.batch_shape == (len(x_test),)
    assert np.allclose(distribution.mean.numpy(), model.predict(x_test), rtol=1e-5)
    quantiles = model.predict_quantiles(x_test, (0.1, 0.5, 0.9))
    assert quantiles.shape == (len(x_test), 3) and (np.diff(quantiles, axis=1) > 0).all()
    interval = model.predict_interval(x_test, 0.9)
    assert 0.7 < ((y_test >= interval[:, 0]) & (y_test <= interval[:, 1])).mean() <= 1.0
    cqr = QuantileRegressor(**{**REGRESS, "epochs": 40}).fit(x_train, y_train)
    bands = cqr.predict_interval(x_test)
    assert bands.shape == (len(x_test), 2) and (bands[:, 1] > bands[:, 0]).all()
    assert ((y_test >= bands[:, 0]) & (y_test <= bands[:, 1])).mean() > 0.75


def test_survival_estimator_with_scikit_survival_targets_in_cross_validation() -> None:
    from lifelines.datasets import load_rossi
    from sklearn.model_selection import KFold

    rossi = load_rossi()
    x = rossi.drop(columns=["week", "arrest"])
    y = np.array(list(zip(rossi["arrest"].astype(bool), rossi["week"].astype(float), strict=True)), dtype=[("event", bool), ("time", float)])
    model = SurvivalRegressor(**{**FAST, "epochs": 30, "batch_size": 128, "lr": 3e-3})
    scores = cross_val_score(model, x, y, cv=KFold(3, shuffle=True, random_state=0))
    assert scores.mean() > 0.58  # Harrell's C; lifelines' CoxPH reaches about 0.64 on Rossi
    fitted = model.fit(x, y)
    times, curves = fitted.predict_survival_function(x.head(4), [10.0, 30.0, 50.0])
    assert list(times) == [10.0, 30.0, 50.0] and curves.shape == (4, 3) and (np.diff(curves, axis=1) <= 1e-9).all() and ((curves >= 0) & (curves <= 1)).all()
    paired = np.stack([rossi["week"], rossi["arrest"]], axis=1)
    assert fitted.score(x, paired) == pytest.approx(fitted.score(x, y))
    with pytest.raises(ValueError, match="durations and events"):
        SurvivalRegressor(**FAST).fit(x, np.ones((len(x), 3)))
    uncensored = SurvivalRegressor(**FAST).fit(x, rossi["week"])  # durations alone: every event observed
    assert uncensored.predictor_.meta["event_rate"] == 1.0
