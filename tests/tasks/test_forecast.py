"""The forecasting task: the same MASE/sMAPE as the classical baselines, pinball quantiles, training, predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import deepatlas
from deepatlas.config import DataConfig
from deepatlas.data.series import Series, SeriesData, SeriesOptions
from deepatlas.errors import CapabilityError, ConfigError
from deepatlas.forecast_baselines import evaluate_forecaster, naive
from deepatlas.metrics.intervals import coverage, mean_pinball
from deepatlas.tasks.base import accumulate
from deepatlas.tasks.forecast import ForecastConfig, Forecasting


def _data(n: int = 150, season: int = 12, seed: int = 0, **kw) -> SeriesData:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    x = 50 + 0.3 * t + 5 * np.sin(2 * np.pi * t / season) + rng.normal(0, 1, n)
    opts = SeriesOptions(**{"context": 24, "horizon": 12, "test_origins": 3, "val_origins": 2, "stride": 6, **kw})
    return SeriesData("toy", [Series("toy", x, np.zeros((n, 0)), t)], DataConfig(name="series-csv", batch_size=2, options=opts),
                      default_season=season)


class SeasonalNaive(nn.Module):
    """The seasonal-naive forecast from the window: the last m inputs repeated (scaled units are linear, so exact)."""

    def __init__(self, season: int, horizon: int) -> None:
        super().__init__()
        self.season, self.horizon, self.dummy = season, horizon, nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        j = torch.arange(self.horizon)
        return x[:, x.shape[1] - self.season + j % self.season, 0] + 0 * self.dummy


class Last(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1:, 0].repeat(1, 12)


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize(("model", "baseline"), [("snaive", "seasonal-naive"), ("naive", naive)])
def test_metrics_equal_the_baselines_on_the_same_origins(split: str, model: str, baseline) -> None:
    data = _data()
    task = Forecasting(ForecastConfig(), data.meta)
    net = SeasonalNaive(12, 12) if model == "snaive" else Last()
    got = task.reduce(accumulate(task, net, data.eval_batches(split, torch.device("cpu"))))  # batches of 2: rows/ concatenated
    want = evaluate_forecaster(baseline, data, split)
    for key in ("mase", "smape", "mae"):
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
    if model == "snaive":
        assert got["mase"] != pytest.approx(1.0)  # the scale is the whole history's, not the window's


def test_train_split_has_no_mase_but_original_units() -> None:
    data = _data()
    task = Forecasting(ForecastConfig(), data.meta)
    got = task.reduce(accumulate(task, Last(), data.eval_batches("train", torch.device("cpu"))))
    assert "mase" not in got and got["mae"] > 0.5  # noise sd 1 in original units, not the scaled ~0.1


def test_quantiles_non_crossing_pinball_and_coverage_against_the_oracle() -> None:
    data = _data()
    levels = (0.05, 0.5, 0.95)
    task = Forecasting(ForecastConfig(quantiles=levels), data.meta)
    assert task.model_meta() == {"num_outputs": 36}
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(24, 36))
    x, y = data.split("test").inputs, data.split("test").targets
    q = task.forecast(net, x)
    assert q.shape == (3, 12, 3) and bool((q[..., 1:] > q[..., :-1]).all())
    got = task.reduce(accumulate(task, net, data.eval_batches("test", torch.device("cpu"))))
    qo = data.unscale("test", q.detach().double().numpy())
    yo = data.unscale("test", y.double().numpy())
    assert got["pinball"] == pytest.approx(mean_pinball(yo.ravel(), qo.reshape(-1, 3), levels), rel=1e-6)
    assert got["coverage90"] == pytest.approx(coverage(yo.ravel(), qo[..., 0].ravel(), qo[..., 2].ravel()))
    # the training loss is the pinball loss in scaled units, (tau - 1) e below the quantile (not (1 - tau) e)
    loss = task.training_step(net, (x, y), "main").loss.detach()
    want = mean_pinball(y.double().numpy().ravel(), q.detach().double().numpy().reshape(-1, 3), levels)
    assert float(loss) == pytest.approx(want, rel=1e-5) and float(loss) > 0


def test_bad_levels_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="task.quantiles"):
        Forecasting(ForecastConfig(quantiles=(0.5, 0.1)), _data().meta)


@pytest.mark.parametrize("model", ["mlp-forecaster", "nbeats"])
def test_train_through_the_engine_and_predict_in_original_units(model: str, tmp_path) -> None:
    overrides = [f"model.name={model}", "train.epochs=3", "model.width=16", "data.name=co2", "task.quantiles=[0.05,0.5,0.95]"]
    if model == "nbeats":
        overrides += ["model.stacks=1", "model.blocks=2", "model.layers=2", "model.theta=4"]
    else:
        overrides += ["model.depth=1"]
    run = deepatlas.train("mlp-forecast-co2", overrides, runs_dir=tmp_path, progress=False)
    test = run.summary["eval"]["test"]
    assert {"mase", "smape", "mae", "pinball", "coverage90"} <= set(test) and np.isfinite(test["mase"])
    predictor = deepatlas.load(run.id, runs_dir=tmp_path)
    history = np.linspace(320, 360, 40)  # raw ppm, more than the 36-month context
    out = predictor.outputs(history[None])
    assert out["prediction"].shape == (1, 12) and out["quantiles"].shape == (1, 12, 3)
    assert bool((out["lower"] <= out["upper"]).all())
    assert 250 < float(out["prediction"].mean()) < 450  # ppm, not scaled units
    assert predictor.predict_interval(history[None], 0.9).shape == (1, 12, 2)
    assert predictor.predict_quantiles(history[None], [0.1, 0.5]).shape == (1, 12, 2)


@pytest.mark.parametrize("levels", [(), (0.1, 0.5, 0.9)])
def test_last_value_normalization_is_level_free(levels) -> None:
    data = _data()
    task = Forecasting(ForecastConfig(quantiles=levels, normalize="last"), data.meta)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(24, 12 * max(1, len(levels))))
    x = data.split("test").inputs
    shifted = x + 3.0  # the same window at another level: the forecast moves by the same amount
    torch.testing.assert_close(task.forecast(net, shifted), task.forecast(net, x) + 3.0, atol=1e-4, rtol=1e-5)
    raw = Forecasting(ForecastConfig(quantiles=levels, normalize="none"), data.meta)
    assert not torch.allclose(raw.forecast(net, shifted), raw.forecast(net, x) + 3.0, atol=1e-3)


def test_several_series_with_covariates_are_unscaled_per_series() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(120, dtype=np.float64)
    series = [Series(name, level + scale * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, 120), rng.normal(size=(120, 1)), t)
              for name, level, scale in (("a", 10.0, 1.0), ("b", 500.0, 40.0))]
    opts = SeriesOptions(context=24, horizon=12, test_origins=2, val_origins=1)
    data = SeriesData("two", series, DataConfig(name="series-csv", batch_size=3, options=opts), default_season=12)
    task = Forecasting(ForecastConfig(normalize="none"), data.meta)
    for split in ("val", "test"):
        got = task.reduce(accumulate(task, SeasonalNaive(12, 12), data.eval_batches(split, torch.device("cpu"))))
        want = evaluate_forecaster("seasonal-naive", data, split)
        for key in ("mase", "smape", "mae"):
            assert got[key] == pytest.approx(want[key], rel=1e-5), (split, key)


def test_quantile_capabilities_follow_the_levels() -> None:
    data = _data()
    point = Forecasting(ForecastConfig(), data.meta)
    assert point.capabilities == {"predict"} and not point.can("quantiles")
    task = Forecasting(ForecastConfig(quantiles=(0.05, 0.5, 0.95)), data.meta)
    assert task.can("quantiles") and task.can("interval")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(24, 36))
    x = data.split("test").inputs
    q = task.predict_quantiles(net, x, [0.05, 0.25, 0.5, 0.95])
    out = task.predict(net, x)
    torch.testing.assert_close(q[..., 0], out["lower"])
    torch.testing.assert_close(q[..., 2], out["prediction"])
    assert bool((q[..., 1:] >= q[..., :-1]).all())
    lo, hi = task.predict_interval(net, x, 0.9)
    torch.testing.assert_close(lo, out["lower"])
    torch.testing.assert_close(hi, out["upper"])
    with pytest.raises(CapabilityError, match="outside the trained levels"):
        task.predict_interval(net, x, 0.95)
