"""The statistics family's pictures: every tabular run that predicts intervals draws them (issue 15)."""

from __future__ import annotations

import pytest
from PIL import Image

import deepatlas


@pytest.mark.parametrize("recipe", ["heteroscedastic-engel", "quantile-engel"])
def test_interval_tasks_draw_predicted_against_observed(recipe: str) -> None:
    run = deepatlas.train(recipe, ["train.epochs=3", "train.checkpoint_every=0"], progress=False)
    figure = run.path / "intervals-test.png"
    assert figure.is_file()
    with Image.open(figure) as image:
        assert image.size[0] > 600 and image.getextrema() != ((255, 255), (255, 255), (255, 255), (255, 255))


def test_survival_runs_draw_predicted_curves_against_kaplan_meier() -> None:
    run = deepatlas.train("deepsurv-gbsg2", ["train.epochs=3", "train.checkpoint_every=0"], progress=False)
    figure = run.path / "survival-test.png"
    assert figure.is_file() and figure.stat().st_size > 10_000


@pytest.mark.parametrize("extra", [[], ["task.quantiles=[0.05,0.5,0.95]"]])
def test_forecasting_runs_draw_forecasts_against_the_truth(extra: list[str]) -> None:
    run = deepatlas.train("mlp-forecast-co2", ["train.epochs=2", "train.checkpoint_every=0", *extra], progress=False)
    figure = run.path / "forecasts-test.png"
    assert figure.is_file() and figure.stat().st_size > 10_000
