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
    assert got["coverage"] == pytest.approx(coverage(yo.ravel(), qo[..., 0].ravel(), qo[..., 2].ravel()))
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
    assert {"mase", "smape", "mae", "pinball", "coverage", "width"} <= set(test) and np.isfinite(test["mase"])
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


def test_conformal_correction_per_step_equals_the_order_statistic_and_covers() -> None:
    from deepatlas.conformal import conformal_quantile

    data = _data(n=260, calibration_windows=40)
    task = Forecasting(ForecastConfig(normalize="none", coverage=0.9), data.meta)
    assert task.calibrates and task.can("interval") and not task.can("quantiles")
    model = SeasonalNaive(12, 12)
    state = task.calibrate(model, data, torch.device("cpu"))
    cal = data.split("calibration")
    residual = (cal.targets.double() - model(cal.inputs).detach().double()).abs().numpy()  # (40, 12) in scaled units
    want = [conformal_quantile(residual[:, j], 0.1) for j in range(12)]
    np.testing.assert_allclose(state["correction"][:, 0].numpy(), want)
    np.testing.assert_allclose(state["correction"][:, 1].numpy(), want)
    assert int(state["n"]) == 40 and len(set(np.round(want, 9))) > 1  # one correction per step
    task.load_calibration(state)
    got = task.reduce(accumulate(task, model, data.eval_batches("test", torch.device("cpu"))))
    test = data.split("test")
    f = model(test.inputs).detach().double().numpy()
    lo, hi = data.unscale("test", f - np.array(want)), data.unscale("test", f + np.array(want))
    y = data.unscale("test", test.targets.double().numpy())
    assert got["conformal_coverage"] == pytest.approx(np.mean((lo <= y) & (y <= hi)))
    assert got["conformal_width"] == pytest.approx(np.mean(hi - lo))
    # a smaller correction covers less: the metric follows the band
    task.load_calibration({**state, "correction": state["correction"] * 0.1})
    assert task.reduce(accumulate(task, model, data.eval_batches("test", torch.device("cpu"))))["conformal_coverage"] < got["conformal_coverage"]


def test_conformalized_quantile_band_is_cqr_per_step() -> None:
    from deepatlas.conformal import conformal_quantile, cqr_scores

    data = _data(n=260, calibration_windows=30)
    task = Forecasting(ForecastConfig(quantiles=(0.1, 0.5, 0.9), coverage=0.8), data.meta)
    assert task.band == (0, 2)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(24, 36))
    state = task.calibrate(net, data, torch.device("cpu"))
    cal = data.split("calibration")
    q = task.forecast(net, cal.inputs).detach().double().numpy()
    scores = cqr_scores(cal.targets.double().numpy(), q[..., 0], q[..., 2])
    np.testing.assert_allclose(state["correction"][:, 0].numpy(), [conformal_quantile(scores[:, j], 0.2) for j in range(12)])
    task.load_calibration(state)
    x = data.split("test").inputs
    raw_lo, raw_hi = task.predict_quantiles(net, x, [0.1, 0.9]).unbind(-1)
    lo, hi = task.predict_interval(net, x, 0.8)
    std = data.meta["scaling"][0]["std"]
    torch.testing.assert_close(raw_lo - lo, (state["correction"][:, 0] * std).expand_as(lo))
    torch.testing.assert_close(hi - raw_hi, (state["correction"][:, 1] * std).expand_as(hi))
    with pytest.raises(CapabilityError, match="conformalized for coverage 0.8"):
        task.predict_interval(net, x, 0.9)


def test_calibrated_run_through_the_engine(tmp_path) -> None:
    overrides = ["train.epochs=2", "model.width=16", "model.depth=1", "data.calibration_windows=24"]
    run = deepatlas.train("mlp-forecast-co2", overrides, runs_dir=tmp_path, progress=False)
    assert (run.path / "calibration.safetensors").is_file()
    test = run.summary["eval"]["test"]
    assert 0.0 <= test["conformal_coverage"] <= 1.0 and test["conformal_width"] > 0
    predictor = deepatlas.load(run.id, runs_dir=tmp_path)
    history = np.linspace(320, 360, 40)
    band = predictor.predict_interval(history[None], 0.9)
    out = predictor.outputs(history[None])
    assert band.shape == (1, 12, 2) and bool((band[..., 0] < out["prediction"].numpy()).all())
    np.testing.assert_allclose(band[..., 0], out["lower"].numpy())
    with pytest.raises(CapabilityError, match="coverage 0.9"):
        predictor.predict_interval(history[None], 0.8)
    with pytest.raises(CapabilityError, match="quantiles"):
        predictor.predict_quantiles(history[None], [0.5])


def test_uncalibrated_point_run_has_no_interval() -> None:
    task = Forecasting(ForecastConfig(), _data().meta)
    assert not task.calibrates and not task.can("interval")


def test_normal_forecast_nll_crps_and_band_in_original_units_against_scipy() -> None:
    from scipy.stats import norm

    data = _data()
    task = Forecasting(ForecastConfig(distribution="normal", normalize="none", coverage=0.8), data.meta)
    assert task.model_meta() == {"num_outputs": 24} and {"distribution", "quantiles", "interval"} <= task.capabilities
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(24, 24))
    x, y = data.split("test").inputs, data.split("test").targets
    raw = net(x).detach().double().reshape(3, 12, 2)
    loc, scale = raw[..., 0].numpy(), torch.nn.functional.softplus(raw[..., 1] + np.log(np.e - 1)).numpy()  # softplus(0 + isp(1)) = 1
    # the training loss: the mean Gaussian NLL over steps in scaled units
    loss = float(task.training_step(net, (x, y), "main").loss.detach())
    assert loss == pytest.approx(-norm.logpdf(y.double().numpy(), loc, scale).mean(), rel=1e-5)
    got = task.reduce(accumulate(task, net, data.eval_batches("test", torch.device("cpu"))))
    sc = data.meta["scaling"][0]
    mu, sigma = sc["mean"] + sc["std"] * loc, sc["std"] * scale
    yo = data.unscale("test", y.double().numpy())
    assert got["nll"] == pytest.approx(-norm.logpdf(yo, mu, sigma).mean(), rel=1e-5)
    z = (yo - mu) / sigma
    want_crps = sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert got["crps"] == pytest.approx(want_crps.mean(), rel=1e-5)
    lo, hi = norm.ppf(0.1, mu, sigma), norm.ppf(0.9, mu, sigma)
    assert got["coverage"] == pytest.approx(np.mean((lo <= yo) & (yo <= hi)))
    assert got["width"] == pytest.approx(np.mean(hi - lo), rel=1e-5)
    dist = task.predict_distribution(net, x)
    assert dist.batch_shape == (3, 12)
    np.testing.assert_allclose(dist.mean.numpy(), mu, rtol=1e-6)
    q = task.predict_quantiles(net, x, [0.25, 0.75]).numpy()
    np.testing.assert_allclose(q[..., 0], norm.ppf(0.25, mu, sigma), rtol=1e-5)
    band = task.predict_interval(net, x, 0.8)
    np.testing.assert_allclose(band[0].numpy(), lo, rtol=1e-5)


@pytest.mark.parametrize("family", ["laplace", "student-t"])
def test_distribution_forecast_is_level_free_with_last_value_normalization(family) -> None:
    data = _data()
    task = Forecasting(ForecastConfig(distribution=family), data.meta)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(24, 12 * task.dist_head.num_outputs))
    x = data.split("test").inputs
    a, b = task.distribution(task.forecast(net, x)), task.distribution(task.forecast(net, x + 3.0))
    torch.testing.assert_close(b.loc, a.loc + 3.0, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(b.scale, a.scale, atol=1e-5, rtol=1e-5)
    assert np.isfinite(task.reduce(accumulate(task, net, data.eval_batches("test", torch.device("cpu"))))["crps"])


def test_quantiles_and_distribution_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="choose one"):
        Forecasting(ForecastConfig(quantiles=(0.1, 0.9), distribution="normal"), _data().meta)
    with pytest.raises(CapabilityError, match="distribution"):
        Forecasting(ForecastConfig(), _data().meta).predict_distribution(nn.Identity(), torch.zeros(1, 24, 1))


def test_normal_forecaster_through_the_engine(tmp_path) -> None:
    overrides = ["train.epochs=2", "model.width=16", "model.depth=1", "task.distribution=normal", "data.calibration_windows=12"]
    run = deepatlas.train("mlp-forecast-co2", overrides, runs_dir=tmp_path, progress=False)
    test = run.summary["eval"]["test"]
    assert {"nll", "crps", "coverage", "width", "conformal_coverage", "mase"} <= set(test)
    predictor = deepatlas.load(run.id, runs_dir=tmp_path)
    history = np.linspace(320, 360, 40)
    dist = predictor.predict_distribution(history[None])
    assert dist.batch_shape == (1, 12) and 250 < float(dist.mean.mean()) < 450
