"""Windowed series on rolling origins: windows, origins, scaling fitted on the past only, CSV reading."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from deepatlas.config import DataConfig
from deepatlas.data import load_dataset
from deepatlas.data.bundle import DataBundle
from deepatlas.data.series import (
    Series,
    SeriesData,
    SeriesFileOptions,
    SeriesOptions,
    evaluation_origins,
    series_from_frame,
)
from deepatlas.data.series_sources import load_series_csv
from deepatlas.errors import DataError


def _config(options: SeriesOptions, **kw) -> DataConfig:
    return DataConfig(name="series-csv", batch_size=kw.pop("batch_size", 8), options=options, **kw)


def _series(values, covariates=None, name="a") -> Series:
    values = np.asarray(values, dtype=np.float64)
    cov = np.zeros((len(values), 0)) if covariates is None else np.asarray(covariates, dtype=np.float64).reshape(len(values), -1)
    return Series(name, values, cov, np.arange(len(values)))


def test_evaluation_origins():
    val, test = evaluation_origins(100, 5, 3, 2, 5)
    assert test == [85, 90, 95] and val == [75, 80]
    val, test = evaluation_origins(100, 5, 2, 1, 2)
    assert test == [93, 95] and val == [91]


def test_windows_targets_and_scaling():
    x = np.arange(60, dtype=np.float64) ** 1.5
    opts = SeriesOptions(context=6, horizon=4, test_origins=2, val_origins=1)
    data = SeriesData("toy", [_series(x)], _config(opts))
    assert isinstance(data, DataBundle)
    assert data.origins["test"] == [(0, 52), (0, 56)] and data.origins["val"] == [(0, 48)]
    v = 48
    assert data.origins["train"][0] == (0, 6) and data.origins["train"][-1] == (0, v - 4)
    sc = data.meta["scaling"][0]
    assert sc["mean"] == pytest.approx(x[:v].mean()) and sc["std"] == pytest.approx(x[:v].std())
    z = (x - sc["mean"]) / sc["std"]
    test = data.split("test")
    assert test.inputs.shape == (2, 6, 1) and test.targets.shape == (2, 4)
    np.testing.assert_allclose(test.inputs[1, :, 0].numpy(), z[50:56], rtol=1e-5)
    np.testing.assert_allclose(test.targets[1].numpy(), z[56:60], rtol=1e-5)
    np.testing.assert_allclose(data.unscale("test", test.targets.numpy()), np.stack([x[52:56], x[56:60]]), rtol=1e-5)
    assert data.meta["context"] == 6 and data.meta["horizon"] == 4 and data.meta["season"] == 1


def test_future_values_change_neither_training_batches_nor_scaling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=80).cumsum()
    cov = rng.normal(size=(80, 2))
    opts = SeriesOptions(context=8, horizon=5, test_origins=3, val_origins=2)
    first_val = evaluation_origins(80, 5, 3, 2, 5)[0][0]
    base = SeriesData("toy", [_series(x, cov)], _config(opts))
    for t in range(first_val, 80):  # any single value at or after the first validation origin
        y, c = x.copy(), cov.copy()
        y[t] += 1e3
        c[t] -= 1e3
        other = SeriesData("toy", [_series(y, c)], _config(opts))
        assert other.meta["scaling"] == base.meta["scaling"]
        assert other.fingerprints(("train",)) == base.fingerprints(("train",))
        for epoch in range(2):
            for (a, ta), (b, tb) in zip(base.train_batches(epoch, 1, torch.device("cpu")), other.train_batches(epoch, 1, torch.device("cpu")), strict=True):
                assert torch.equal(a, b) and torch.equal(ta, tb)
    # and a value before it does change them
    y = x.copy()
    y[first_val - 1] += 1e3
    assert SeriesData("toy", [_series(y, cov)], _config(opts)).meta["scaling"] != base.meta["scaling"]


def test_batches_shapes_with_covariates_and_many_series(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for sid, n in (("b", 50), ("a", 40)):
        for t in range(n):
            rows.append({"sid": sid, "day": t, "y": float(np.sin(t / 3) + rng.normal()), "temp": rng.normal(), "load": float(t)})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # shuffled rows: sorted by time per series
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    opts = SeriesFileOptions(path=str(path), value="y", time="day", series_id="sid", covariates=("temp", "load"),
                             context=5, horizon=3, test_origins=2, val_origins=1, season=7)
    data = load_series_csv(_config(opts, batch_size=4))
    assert data.meta["series"] == ["b", "a"] or data.meta["series"] == ["a", "b"]
    assert data.meta["input_size"] == 3 and data.meta["season"] == 7 and len(data.meta["scaling"]) == 2
    assert data.meta["sizes"]["test"] == 4 and data.meta["sizes"]["val"] == 2
    batch, target = next(data.train_batches(0, 0, torch.device("cpu")))
    assert batch.shape == (4, 5, 3) and target.shape == (4, 3) and batch.dtype == torch.float32
    evals = list(data.eval_batches("test", torch.device("cpu")))
    assert sum(len(t) for _, t in evals) == 4
    idx = data.meta["series"].index("a")
    a = frame[frame.sid == "a"].sort_values("day")
    np.testing.assert_allclose(data.series[idx].values, a["y"].to_numpy())
    # the "load" covariate is the time index: its scaled past is in the input window
    i_test = [j for j, (s, _) in enumerate(data.origins["test"]) if s == idx][-1]
    sc = data.meta["scaling"][idx]
    expected = (np.arange(32, 37) - sc["covariate_mean"][1]) / sc["covariate_std"][1]
    np.testing.assert_allclose(data.split("test").inputs[i_test, :, 2].numpy(), expected, rtol=1e-5)


def test_builtin_series_load():
    co2 = load_dataset("co2")
    assert co2.meta["season"] == 12 and len(co2.series[0].values) == 526 and np.all(np.isfinite(co2.series[0].values))
    assert co2.meta["sizes"]["test"] == 4
    for name, season in (("sunspots", 11), ("nile", 1), ("elnino", 12), ("macrodata", 4)):
        assert load_dataset(name).meta["season"] == season


def test_sktime_series_load():
    pytest.importorskip("sktime")
    for name, length, season, first in (("airline", 144, 12, 112.0), ("lynx", 114, 10, 269.0), ("shampoo", 36, 1, 266.0)):
        data = load_dataset(name)
        assert len(data.series[0].values) == length and data.meta["season"] == season
        assert data.series[0].values[0] == pytest.approx(first) and data.meta["sizes"]["train"] > 0


def test_calibration_windows_are_held_out_of_training():
    x = np.arange(80, dtype=np.float64) ** 1.2
    opts = SeriesOptions(context=6, horizon=4, test_origins=2, val_origins=1, calibration_windows=5)
    data = SeriesData("toy", [_series(x)], _config(opts))
    v = data.origins["val"][0][1]
    assert v == 68 and data.origins["calibration"] == [(0, t) for t in range(60, 65)]
    # calibration targets end by the first validation origin; training targets end before the first calibration origin
    assert all(t + 4 <= v for _, t in data.origins["calibration"])
    assert data.origins["train"][-1] == (0, 56) and all(t + 4 <= 60 for _, t in data.origins["train"])
    assert data.meta["sizes"]["calibration"] == 5 and data.meta["calibration_windows"] == 5
    assert data.meta["windows"]["calibration"]["origin"] == list(range(60, 65))
    assert data.meta["scaling"][0]["fit_end"] == v  # the scaling still sees everything before validation
    plain = SeriesData("toy", [_series(x)], _config(dataclasses.replace(opts, calibration_windows=0)))
    assert "calibration" not in plain.splits and plain.origins["train"][-1] == (0, 64)
    with pytest.raises(DataError, match="calibration windows"):
        SeriesData("toy", [_series(x)], _config(dataclasses.replace(opts, calibration_windows=60)))


def test_no_evaluation_origins_trains_on_the_whole_series():
    x = np.arange(40, dtype=np.float64)
    opts = SeriesOptions(context=5, horizon=3, test_origins=0, val_origins=0)
    data = SeriesData("toy", [_series(x)], _config(opts))
    assert data.origins["train"][-1] == (0, 37) and not data.origins["val"] and not data.origins["test"]
    assert data.meta["scaling"][0]["mean"] == pytest.approx(x.mean())


def test_series_frame_dataset():
    from deepatlas.data import register_frame
    from deepatlas.data.series import SeriesFrameOptions
    from deepatlas.data.series_sources import load_series_frame

    frame = pd.DataFrame({"t": np.arange(50)[::-1], "y": np.arange(50, dtype=float)[::-1] ** 2})
    opts = SeriesFrameOptions(frame=register_frame(frame), value="y", time="t", context=5, horizon=2, test_origins=2, val_origins=1)
    data = load_series_frame(_config(opts))
    np.testing.assert_allclose(data.series[0].values, np.arange(50.0) ** 2)  # sorted by time
    with pytest.raises(DataError, match="register_frame"):
        load_series_frame(_config(dataclasses.replace(opts, frame="df-nope")))


def test_errors():
    opts = SeriesOptions(context=30, horizon=10, test_origins=3, val_origins=1)
    with pytest.raises(DataError, match="too few"):
        SeriesData("toy", [_series(np.arange(50.0))], _config(opts))
    x = np.arange(100.0)
    x[3] = np.nan
    with pytest.raises(DataError, match="missing"):
        SeriesData("toy", [_series(x)], _config(dataclasses.replace(opts, context=5)))
    with pytest.raises(DataError, match="no column 'v'"):
        series_from_frame(pd.DataFrame({"y": [1.0]}), "v")
    with pytest.raises(DataError, match="data.value"):
        load_series_csv(_config(SeriesFileOptions()))


def test_preprocessor_round_trip_matches_the_test_windows(tmp_path):
    from deepatlas.data.preprocess import load_preprocessor

    rng = np.random.default_rng(2)
    series = [_series(rng.normal(size=40).cumsum() + 10 * j, rng.normal(size=(40, 1)), name=f"s{j}") for j in range(2)]
    opts = SeriesOptions(context=6, horizon=3, test_origins=2, val_origins=1)
    data = SeriesData("toy", series, _config(opts))
    data.save(tmp_path)
    pre = load_preprocessor(tmp_path)
    assert pre == data.preprocessor()
    test = data.split("test")
    for j, (i, t) in enumerate(data.origins["test"]):
        raw = np.column_stack([series[i].values, series[i].covariates])[:t][None]  # the whole history before t
        np.testing.assert_allclose(pre({"series": f"s{i}", "values": raw}).numpy(), test.inputs[j : j + 1].numpy(), rtol=1e-5)
        np.testing.assert_allclose(pre.unscale(test.targets[j].numpy(), f"s{i}"), series[i].values[t : t + 3], rtol=1e-5)
    with pytest.raises(DataError, match="expected"):
        pre(np.zeros(3))
    with pytest.raises(DataError, match="not one the model"):
        pre({"series": "zz", "values": np.zeros((1, 6, 2))})
