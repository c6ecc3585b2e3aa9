"""The quantile-regression task: non-crossing head, pinball loss, CQR calibration, raw-row prediction, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

import deepatlas
from deepatlas.conformal import cqr_correction
from deepatlas.data import load_dataset
from deepatlas.errors import CapabilityError, ConfigError, DataError
from deepatlas.metrics.intervals import mean_pinball
from deepatlas.tasks.quantile import (
    QuantileConfig,
    QuantileHead,
    QuantileRegression,
    interpolate_quantiles,
)

META = {"target_type": "real", "target_mean": 10.0, "target_std": 2.0}


@pytest.mark.parametrize("levels", [(0.05, 0.5, 0.95), (0.1, 0.3, 0.7, 0.9), (0.2, 0.5), (0.5,), (0.01, 0.25, 0.5, 0.75, 0.99)])
def test_quantiles_never_cross(levels: tuple[float, ...]) -> None:
    head = QuantileHead(levels, 10.0, 2.0)
    z = torch.randn(1000, len(levels), generator=torch.Generator().manual_seed(0)) * 20  # wild weights
    q = head(z)
    assert q.shape == (1000, len(levels))
    assert bool((q.diff(dim=1) > 0).all())


def test_a_fresh_network_predicts_the_marginal_normal_quantiles() -> None:
    levels = (0.05, 0.25, 0.5, 0.9)
    q = QuantileHead(levels, 10.0, 2.0)(torch.zeros(3, 4))
    np.testing.assert_allclose(q[0].numpy(), 10 + 2 * norm.ppf(levels), atol=1e-4)
    q = QuantileHead((0.1, 0.9), 0.0, 1.0)(torch.zeros(1, 2))  # anchor = first level when 0.5 is not trained
    np.testing.assert_allclose(q[0].numpy(), norm.ppf([0.1, 0.9]), atol=1e-4)


def test_interpolation_is_exact_at_trained_levels_and_monotone() -> None:
    q = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    out = interpolate_quantiles(q, (0.1, 0.5, 0.9), [0.1, 0.3, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(out[0].numpy(), [1.0, 1.5, 2.0, 3.0, 4.0])


def test_loss_is_the_mean_pinball_over_levels() -> None:
    task = QuantileRegression(QuantileConfig(), META)
    model = torch.nn.Linear(1, 3)
    x, y = torch.randn(16, 1), 10 + 2 * torch.randn(16)
    loss = task.training_step(model, (x, y), "main").loss.detach()
    q = task.quantiles(model, x).detach().numpy()
    expected = mean_pinball(y.numpy(), q, (0.05, 0.5, 0.95)) / 2.0  # standardised units: divided by target_std
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="increasing"):
        QuantileRegression(QuantileConfig(quantiles=(0.9, 0.1)), META)
    with pytest.raises(ConfigError, match="strictly between"):
        QuantileRegression(QuantileConfig(quantiles=(0.0, 0.5)), META)
    with pytest.raises(DataError, match="real target"):
        QuantileRegression(QuantileConfig(), {"target_type": "class"})


def test_band_levels_from_coverage_or_the_outermost_pair() -> None:
    assert QuantileRegression(QuantileConfig(quantiles=(0.05, 0.1, 0.5, 0.9, 0.95), coverage=0.8), META).band == (1, 3)
    assert QuantileRegression(QuantileConfig(quantiles=(0.1, 0.5, 0.95), coverage=0.9), META).band == (0, 2)


TINY = ["train.epochs=3", "model.width=16", "model.depth=1"]


@pytest.fixture(scope="module")
def engel_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return deepatlas.train("quantile-engel", TINY, runs_dir=runs, progress=False), runs


def test_engel_end_to_end(engel_run) -> None:
    run, runs = engel_run
    test = run.summary["eval"]["test"]
    for key in ("loss", "pinball", "rmse", "mae", "coverage", "width", "conformal_coverage", "conformal_width", "crps"):
        assert np.isfinite(test[key]), key
    # the saved correction is CQR on the calibration split's outer quantiles of the best weights
    predictor = deepatlas.load(run.id, runs_dir=runs)
    data = load_dataset(run.config.data)
    cal = data.split("calibration")
    with torch.no_grad():
        q = predictor.task.quantiles(predictor.model, cal.inputs).double().numpy()
    expected = cqr_correction(cal.targets.numpy(), q[:, 0], q[:, 2], 0.1)
    state = predictor.task.calibration_state()
    np.testing.assert_allclose(state["correction"].numpy(), expected, rtol=0, atol=1e-6)
    assert int(state["n"]) == len(cal)


def test_predict_interval_on_raw_rows_and_export_round_trip(engel_run, tmp_path) -> None:
    import statsmodels.api as sm

    run, runs = engel_run
    frame = sm.datasets.engel.load_pandas().data.head(7)  # raw rows, target column included and ignored
    predictor = deepatlas.load(run.id, runs_dir=runs)
    interval = predictor.predict_interval(frame, coverage=0.9)
    quantiles = predictor.predict_quantiles(frame, (0.05, 0.5, 0.95))
    q_lo, q_hi = predictor.task.calibration_state()["correction"].tolist()
    np.testing.assert_allclose(interval[:, 0], quantiles[:, 0] - q_lo, atol=1e-6)
    np.testing.assert_allclose(interval[:, 1], quantiles[:, 2] + q_hi, atol=1e-6)
    np.testing.assert_allclose(predictor.predict(frame), quantiles[:, 1], atol=1e-6)
    assert (np.diff(predictor.predict_quantiles(frame, (0.05, 0.2, 0.5, 0.7, 0.95)), axis=1) > 0).all()
    with pytest.raises(CapabilityError, match="task.coverage=0.8"):
        predictor.predict_interval(frame, coverage=0.8)
    with pytest.raises(CapabilityError, match="trained levels"):
        predictor.predict_quantiles(frame, (0.01, 0.5))
    exported = deepatlas.load(predictor.export(tmp_path / "engel-quantiles"))
    np.testing.assert_array_equal(exported.predict_interval(frame, coverage=0.9), interval)


def test_without_a_calibration_split_it_calibrates_on_val(tmp_path) -> None:
    run = deepatlas.train("quantile-engel", [*TINY, "data.calibration_fraction=0", "train.test=false"],
                          runs_dir=tmp_path, progress=False)
    predictor = deepatlas.load(run.id, runs_dir=tmp_path)
    assert int(predictor.task.calibration_state()["n"]) == run.summary["data"]["sizes"]["val"]


def test_coverage_study_reports_every_method_on_the_same_splits(tmp_path) -> None:
    from deepatlas.conformal import coverage_study
    from deepatlas.metrics.intervals import coverage_band

    result = coverage_study("quantile-engel", seeds=(0, 1), overrides=TINY, runs_dir=tmp_path)
    assert [r["seed"] for r in result["splits"]] == [0, 1]
    for row in result["splits"]:
        assert row["band"] == coverage_band(row["n_test"], 0.9)
        for name in ("", "mapie_split_", "mapie_cqr_"):
            assert 0.0 <= row[f"{name}coverage"] <= 1.0 and row[f"{name}width"] > 0
    assert set(result["inside"]) >= {"inside_band", "mapie_split_inside_conformal_band"}


def test_coverage_study_needs_a_calibration_split(tmp_path) -> None:
    from deepatlas.conformal import coverage_study
    from deepatlas.errors import ConfigError

    with pytest.raises(ConfigError, match="calibration_fraction > 0"):
        coverage_study("quantile-engel", seeds=(0,), overrides=["data.calibration_fraction=0"], runs_dir=tmp_path)
