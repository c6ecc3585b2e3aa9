"""Tables: inferred column types, preprocessing fitted on training rows only, unknown categories, missing
values, seeded splits and folds, and the saved preprocessing used by deepatlas.load on raw rows (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset, register_frame
from deepatlas.data.tabular import TabularPreprocessor
from deepatlas.data.tabular_sources import BUILTIN
from deepatlas.errors import DataError


def frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.normal(10, 3, size=n)
    size[::7] = np.nan  # missing values
    label = np.where(x + (colour == "red") > 0.3, "yes", "no")
    return pd.DataFrame({"id": np.arange(n), "x": x, "colour": colour, "size": size, "label": label})


def table_config(path: Path, *extra: str):
    return load_recipe("quickstart", ["data.name=table", f"data.path={path}", "data.target=label", "data.drop=[id]", *extra]).data


def test_columns_are_inferred_and_standardised_on_training_rows_only(tmp_path: Path) -> None:
    df = frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    data = load_dataset(table_config(tmp_path / "t.csv"))
    p = data.preprocessor()
    assert p.numeric == ("x", "size") and p.categorical == ("colour",)
    assert p.indicators == ("size",)  # missing training values get an indicator
    assert data.meta["target_type"] == "class" and data.meta["class_names"] == ["no", "yes"]
    assert data.meta["cardinalities"] == [4]  # three colours and the unknown slot
    train = data.split("train")
    assert torch.allclose(train.inputs.numeric[:, 0].mean(), torch.tensor(0.0), atol=1e-5)
    rows = data.splits["train"]
    # the statistics come from the training rows alone: the held-out rows are not centred exactly
    everything = df["x"].to_numpy()
    assert p.mean[0] != pytest.approx(everything.mean(), abs=1e-9)
    assert len(rows) + len(data.split("val")) + len(data.split("test")) == len(df)


def test_unknown_categories_and_missing_values_at_prediction() -> None:
    df = frame()
    p = TabularPreprocessor.fit(df, ["x", "size"], ["colour"])
    batch = p(pd.DataFrame({"x": [0.5, np.nan], "size": [np.nan, 10.0], "colour": ["purple", "red"], "extra": [1, 2]}))
    assert batch.categorical[0, 0] == 0  # never seen: the unknown slot
    assert batch.categorical[1, 0] == 1 + p.categories[0].index("red")
    assert batch.numeric[1, 0] == 0 and batch.numeric[0, 2] == 1  # missing -> the mean, with its indicator set
    assert batch.numeric[0, 1] == 0 and batch.numeric[1, 2] == 0
    same = p([{"x": 0.5, "size": None, "colour": "purple"}, {"x": None, "size": 10.0, "colour": "red"}])
    assert torch.equal(same.numeric, batch.numeric) and torch.equal(same.categorical, batch.categorical)
    with pytest.raises(DataError, match="no column 'colour'"):
        p(pd.DataFrame({"x": [1.0], "size": [1.0]}))
    with pytest.raises(DataError, match="'x', row 1: 'abc' is not a number"):
        p(pd.DataFrame({"x": ["abc"], "size": [1.0], "colour": ["red"]}))


def test_preprocessing_round_trips_through_json() -> None:
    p = TabularPreprocessor.fit(frame(), ["x", "size"], ["colour"])
    assert TabularPreprocessor.from_json(p.to_json()) == p


def test_folds_partition_the_rows_and_calibration_is_disjoint(tmp_path: Path) -> None:
    df = frame(100)
    key = register_frame(df)
    tests = []
    for fold in range(4):
        config = load_recipe("quickstart", [
            "data.name=dataframe", f"data.frame={key}", "data.target=label", "data.drop=[id]",
            "data.folds=4", f"data.fold={fold}", "data.calibration_fraction=0.2",
        ]).data
        data = load_dataset(config)
        ids = {s: set(data.split(s).inputs.numeric[:, 0].tolist()) for s in ("train", "val", "calibration", "test")}
        assert all(not (ids[a] & ids[b]) for a in ids for b in ids if a < b)
        tests.append(ids["test"])
    assert sum(len(t) for t in tests) == 100 and len(set().union(*tests)) == 100


def test_survival_and_real_targets(tmp_path: Path) -> None:
    df = frame()
    df["time"] = np.arange(len(df)) + 1.0
    df["event"] = np.where(np.arange(len(df)) % 3 == 0, "false", "true")
    df.to_csv(tmp_path / "s.csv", index=False)
    data = load_dataset(load_recipe("quickstart", [
        "data.name=table", f"data.path={tmp_path / 's.csv'}", "data.target=time", "data.event=event", "data.drop=[id,label]",
    ]).data)
    assert data.meta["target_type"] == "survival"
    y = data.split("train").targets
    assert y.shape[1] == 2 and set(y[:, 1].tolist()) == {0.0, 1.0}
    assert len(data.meta["event_time_quantiles"]) == 101
    real = load_dataset(load_recipe("quickstart", ["data.name=table", f"data.path={tmp_path / 's.csv'}", "data.target=x", "data.drop=[id,label,time,event]"]).data)
    assert real.meta["target_type"] == "real" and real.split("train").targets.dtype == torch.float32


@pytest.mark.parametrize(("content", "message"), [
    ("a,b\n1,2\n", "no column 'label'"),
    ("label,b,b\n1,2,3\n", None),
    ("label,b\n", "no rows"),
    ("label,x\nyes,1\n,2\nno,3\n", "row 2: the target is missing"),
    ("label,x\nyes,1\nno,inf\nno,3\n", "an infinite value"),
])
def test_bad_tables_are_one_line_errors(tmp_path: Path, content: str, message: str | None) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        load_dataset(table_config(path, "data.drop=[]"))
    assert "\n" not in str(exc.value)
    if message:
        assert message in str(exc.value)


def test_survival_table_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("time,event,x\n1,1,0.1\n-2,0,0.3\n3,1,0.2\n")
    base = ["data.name=table", f"data.path={path}", "data.target=time", "data.event=event"]
    with pytest.raises(DataError, match="row 2: a negative duration"):
        load_dataset(load_recipe("quickstart", base).data)
    path.write_text("time,event,x\n1,maybe,0.1\n2,0,0.3\n3,1,0.2\n")
    with pytest.raises(DataError, match="'maybe' is not an event flag"):
        load_dataset(load_recipe("quickstart", base).data)
    path.write_text("time,event,x\n1,0,0.1\n2,0,0.3\n3,0,0.2\n")
    with pytest.raises(DataError, match="no event is observed"):
        load_dataset(load_recipe("quickstart", base).data)


def test_parquet_tables_are_read(tmp_path: Path) -> None:
    df = frame()
    df.to_parquet(tmp_path / "t.parquet")
    data = load_dataset(table_config(tmp_path / "t.parquet"))
    assert data.meta["sizes"]["train"] > 0
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="broken.parquet"):
        load_dataset(table_config(tmp_path / "broken.parquet"))


def test_builtin_tables_load_offline() -> None:
    shapes = {}
    for name in BUILTIN:
        data = load_dataset(name)
        shapes[name] = sum(data.meta["sizes"].values())
        assert data.meta["target_type"] in ("class", "real", "survival")
    assert shapes["diabetes"] == 442 and shapes["breast-cancer"] == 569 and shapes["gbsg2"] == 686
    assert shapes["engel"] == 235 and shapes["rossi"] == 432 and shapes["whas500"] == 500


def test_a_trained_classifier_predicts_raw_rows_after_export(tmp_path: Path) -> None:
    df = frame(300)
    df.to_csv(tmp_path / "t.csv", index=False)
    run = deepatlas.train("quickstart", [
        "data.name=table", f"data.path={tmp_path / 't.csv'}", "data.target=label", "data.drop=[id]",
        "model.name=tabular-mlp", "model.width=32", "train.epochs=25", "data.batch_size=32", "task.label_smoothing=0",
        "train.checkpoint_every=0",
    ], progress=False)
    assert run.summary["eval"]["test"]["accuracy"] > 0.8  # the rule is x + [red] > 0.3: learnable
    predictor = deepatlas.load(run.id)
    raw = df.drop(columns=["label"]).head(20)
    labels = predictor.predict(raw)
    assert set(labels) <= {"yes", "no"}
    exported = deepatlas.load(predictor.export(tmp_path / "export"))
    assert np.array_equal(exported.predict_proba(raw.to_dict("records")), predictor.predict_proba(raw))


def test_deepatlas_predict_reads_table_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from deepatlas.cli import app

    df = frame(200)
    df.to_csv(tmp_path / "t.csv", index=False)
    run = deepatlas.train("quickstart", [
        "data.name=table", f"data.path={tmp_path / 't.csv'}", "data.target=label", "data.drop=[id]",
        "model.name=tabular-mlp", "model.width=16", "train.epochs=2", "train.checkpoint_every=0",
    ], progress=False)
    df.head(3).drop(columns=["label"]).to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(app, ["predict", run.id, str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{tmp_path / 'new.csv'}:1: ") and lines[0].split(": ")[1].split()[0] in ("yes", "no")
