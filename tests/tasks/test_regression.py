"""The regression task end to end on real tables (tiny configs), the GLM baseline, and class-weighted classification."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import deepatlas
from deepatlas.errors import ConfigError, DataError
from deepatlas.metrics.regression import regression_metrics, regression_stats
from deepatlas.nn.distributions import FAMILIES
from deepatlas.registry import TASKS

TINY = ["train.epochs=3", "train.log_every=50", "train.checkpoint_every=0", "model.width=16", "train.test=true"]


def train(overrides: list[str], recipe: str = "recipes/heteroscedastic-engel.yaml", tmp_path: Path | None = None) -> Any:
    return deepatlas.train(recipe, [*TINY, *overrides], runs_dir=tmp_path, progress=False)


def test_a_normal_run_reports_its_declared_metrics_and_predicts_raw_rows(tmp_path: Path) -> None:
    run = train([], tmp_path=tmp_path)
    declared = TASKS.get("regression").factory.metric_directions(run.config.task.options)
    test = run.summary["eval"]["test"]
    assert set(test) == set(declared) and all(math.isfinite(v) for v in test.values())
    assert test["loss"] == pytest.approx(test["nll"], rel=1e-6)
    predictor = deepatlas.load(run.id, runs_dir=tmp_path)
    rows = pd.DataFrame({"income": [400.0, 1000.0, 3000.0], "foodexp": [0.0, 0.0, 0.0]})
    mean = predictor.predict(rows)
    dist = predictor.predict_distribution(rows)
    assert mean.shape == (3,) and dist.batch_shape == (3,)
    np.testing.assert_allclose(mean, dist.mean.numpy(), rtol=1e-6)
    q = predictor.predict_quantiles(rows, [0.05, 0.5, 0.95])
    np.testing.assert_allclose(q, stats.norm.ppf([0.05, 0.5, 0.95], dist.loc.numpy()[:, None], dist.scale.numpy()[:, None]), rtol=1e-4)
    interval = predictor.predict_interval(rows, 0.8)
    np.testing.assert_allclose(interval, stats.norm.ppf([0.1, 0.9], dist.loc.numpy()[:, None], dist.scale.numpy()[:, None]), rtol=1e-4)
    out = predictor.outputs(rows)
    assert set(out) == {"prediction", "std", "lower", "upper"}


def test_normal_fixed_fits_one_global_scale_the_mle_on_training_rows(tmp_path: Path) -> None:
    from deepatlas.data import load_dataset

    run = train(["task.distribution=normal-fixed"], tmp_path=tmp_path)
    predictor = deepatlas.load(run.id, runs_dir=tmp_path)
    data = load_dataset(run.config.data)
    x, y = data.split("train").inputs, data.split("train").targets
    dist = predictor.task.predict_distribution(predictor.model, x)
    mle = float(((y.double() - dist.loc.double()) ** 2).mean().sqrt())
    assert float(dist.scale[0]) == pytest.approx(mle, rel=1e-5)
    assert torch.all(dist.scale == dist.scale[0])
    x_test, y_test = data.split("test").inputs, data.split("test").targets
    test_dist = predictor.task.predict_distribution(predictor.model, x_test)
    assert run.summary["eval"]["test"]["nll"] == pytest.approx(float(-test_dist.log_prob(y_test).double().mean()), rel=1e-5)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "tukey", "barron"])
def test_point_losses_train_the_location(loss: str, tmp_path: Path) -> None:
    run = train([f"task.loss={loss}", "train.epochs=2"], tmp_path=tmp_path)
    assert math.isfinite(run.summary["eval"]["test"]["rmse"])


def test_a_count_family_on_a_real_target_is_one_line_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        train(["task.distribution=poisson"], tmp_path=tmp_path)
    message = str(err.value)
    assert "\n" not in message and "task.distribution=poisson" in message and "data.target" in message


@pytest.mark.parametrize("family", ["poisson", "negative-binomial"])
def test_count_families_on_randhie_and_their_glm(family: str, tmp_path: Path) -> None:
    from deepatlas.baselines.glm import glm
    from deepatlas.build import build_task
    from deepatlas.config import load_recipe
    from deepatlas.data import load_dataset

    run = train([f"task.distribution={family}", "train.epochs=1", "data.limit=2000"], "recipes/poisson-randhie.yaml", tmp_path)
    test = run.summary["eval"]["test"]
    assert math.isfinite(test["nll"]) and 0 <= test["coverage90"] <= 1
    config = load_recipe("recipes/poisson-randhie.yaml", [f"task.distribution={family}", "data.folds=5", "data.fold=1"])
    data = load_dataset(config.data)
    scores = glm(data, build_task(config, data.meta))
    assert set(scores) == set(test)


def test_glm_gaussian_is_ols_and_its_nll_is_the_normal_density(tmp_path: Path) -> None:
    import statsmodels.api as sm

    from deepatlas.baselines.glm import _fit_rows, design, glm
    from deepatlas.build import build_task
    from deepatlas.config import load_recipe
    from deepatlas.data import load_dataset

    config = load_recipe("recipes/heteroscedastic-engel.yaml", ["data.folds=5", "data.fold=2"])
    data = load_dataset(config.data)
    scores = glm(data, build_task(config, data.meta))
    x, y = _fit_rows(data)
    x_test, y_test = data.arrays("test")
    a, levels = design(x, data.meta)
    beta, *_ = np.linalg.lstsq(a, y.astype(np.float64), rcond=None)
    sigma = np.sqrt(np.mean((y - a @ beta) ** 2))
    mu = design(x_test, data.meta, levels)[0] @ beta
    assert scores["nll"] == pytest.approx(-stats.norm.logpdf(y_test, mu, sigma).mean(), rel=1e-6)
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((mu - y_test) ** 2)), rel=1e-6)
    del sm


def test_regression_metrics_match_sklearn() -> None:
    from sklearn.metrics import mean_absolute_error, r2_score

    g = torch.Generator().manual_seed(0)
    y, mean = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    zeros = torch.zeros(100, dtype=torch.float64)
    parts = [regression_stats(mean[i:i + 30], y[i:i + 30], zeros[i:i + 30], zeros[i:i + 30], mean[i:i + 30] - 1, mean[i:i + 30] + 1,
                              torch.zeros((), dtype=torch.float64)) for i in range(0, 100, 30)]
    totals = {k: sum(p[k] for p in parts) for k in parts[0]}
    metrics = regression_metrics(totals)
    assert metrics["r2"] == pytest.approx(r2_score(y.numpy(), mean.numpy()), rel=1e-9)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y.numpy(), mean.numpy()), rel=1e-9)
    assert metrics["coverage90"] == pytest.approx(float(((y - mean).abs() <= 1).double().mean()))
    assert metrics["width90"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- classification: imbalance options


CLASSIFY = [
    "data.name=breast-cancer", "model.name=tabular-mlp", "model.width=16", "model.depth=1", "task.name=classification",
    "train.epochs=2", "train.log_every=50", "train.checkpoint_every=0", "train.test=true",
]


@pytest.mark.parametrize("options", [["task.class_weights=balanced"], ["task.class_weights=effective-number", "task.cb_beta=0.99"],
                                     ["task.focal_gamma=2", "task.class_weights=balanced", "task.label_smoothing=0"]])
def test_class_weighted_and_focal_classification_train_on_a_table(options: list[str], tmp_path: Path) -> None:
    run = deepatlas.train("quickstart", [*CLASSIFY, *options], runs_dir=tmp_path, progress=False)
    assert math.isfinite(run.summary["eval"]["test"]["nll"])
    counts = run.summary["data"]["meta"]["class_counts"]
    assert len(counts) == 2 and sum(counts) > 300  # the training rows of 569 tumours


def test_class_weights_use_the_training_counts() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    entry = TASKS.get("classification")
    from dataclasses import replace

    task = entry.factory(replace(entry.config, class_weights="balanced"), {"num_classes": 3, "class_counts": [80, 15, 5]})
    y = np.repeat(np.arange(3), [80, 15, 5])
    np.testing.assert_allclose(task.class_weight.numpy(), compute_class_weight("balanced", classes=np.arange(3), y=y), rtol=1e-6)


def test_class_weights_without_counts_is_a_clear_error() -> None:
    from dataclasses import replace

    entry = TASKS.get("classification")
    with pytest.raises(ConfigError, match="class_counts"):
        entry.factory(replace(entry.config, class_weights="balanced"), {"num_classes": 10})


def test_focal_loss_with_label_smoothing_is_refused() -> None:
    from dataclasses import replace

    entry = TASKS.get("classification")
    with pytest.raises(ConfigError, match="label_smoothing"):
        entry.factory(replace(entry.config, focal_gamma=2.0, label_smoothing=0.1), {"num_classes": 2})


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_gives_finite_metrics_and_ordered_quantiles(family: str) -> None:
    from deepatlas.nn.distributions import Head, quantiles
    from deepatlas.tasks.regression import distribution_stats
    from tests.nn.test_distributions import SCALES, targets

    head = Head(family, SCALES[family])
    torch.manual_seed(0)
    dist = head(0.3 * torch.randn(40, head.num_outputs))
    y = targets(family, 40)
    metrics = regression_metrics(distribution_stats(dist, y, lambda d, t: -d.log_prob(t), head.family.discrete))
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    q = quantiles(dist, [0.05, 0.25, 0.5, 0.75, 0.95], head.family.discrete)
    assert q.shape == (40, 5) and bool((q.diff(dim=1) >= 0).all())
