"""Deep ensembles: averaged probabilities, accuracy / NLL / ECE of members and ensemble, the CLI."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import deepatlas
from deepatlas.cli import app
from deepatlas.data import load_dataset
from deepatlas.metrics.classification import probability_metrics
from tests.conftest import tiny_recipe


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    runs_dir = tmp_path_factory.mktemp("runs")
    return [deepatlas.train("quickstart", tiny_recipe(**{"train.seed": seed, "train.threads": 1, "train.epochs": 1}),
                            runs_dir=runs_dir, progress=False) for seed in (0, 1, 2)]


def test_ensemble_nll_is_at_most_the_mean_member_nll_and_is_the_hand_average(members: list[Any]) -> None:
    runs_dir = members[0].path.parent
    result = deepatlas.ensemble([r.id for r in members], runs_dir=runs_dir).evaluate("test")
    assert list(result.members) == [r.id for r in members]
    assert result.ensemble["nll"] <= result.member_mean["nll"]
    # by hand: each member's probabilities for the raw test pixels through its own predictor, averaged
    test = load_dataset(members[0].config.data).split("test")
    hand = np.mean([deepatlas.load(r.id, runs_dir=runs_dir).predict_proba(test.images) for r in members], axis=0)
    labels = test.labels.numpy()
    nll = float(-np.log(hand[np.arange(len(labels)), labels]).mean())
    assert result.ensemble["nll"] == pytest.approx(nll, rel=1e-5)
    assert result.ensemble["accuracy"] == pytest.approx(float((hand.argmax(1) == labels).mean()))
    ensemble = deepatlas.ensemble([r.id for r in members], runs_dir=runs_dir)
    np.testing.assert_allclose(ensemble.predict_proba(test.images[:5]), hand[:5], rtol=1e-5)
    assert ensemble.predict(test.images[:5]) == [ensemble.class_names[i] for i in hand[:5].argmax(1)]


def test_member_metrics_are_the_runs_own_test_evaluation(members: list[Any]) -> None:
    runs_dir = members[0].path.parent
    result = deepatlas.ensemble([r.id for r in members[:2]], runs_dir=runs_dir).evaluate("test")
    for run in members[:2]:
        own = deepatlas.evaluate(run.id, "test", runs_dir=runs_dir)["metrics"]
        ours = result.members[run.id]
        assert ours["accuracy"] == pytest.approx(own["accuracy"])
        assert ours["nll"] == pytest.approx(own["nll"], rel=1e-4) and ours["ece"] == pytest.approx(own["ece"], abs=1e-4)


def test_probability_metrics_by_hand() -> None:
    p = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])
    m = probability_metrics(p, y, bins=10)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.4) + np.log(0.3)) / 3)
    assert m["ece"] == pytest.approx((abs(1 - 0.9) + abs(0 - 0.6) + abs(0 - 0.7)) / 3)  # one example per bin


def test_an_ensemble_of_one_run_is_refused(members: list[Any]) -> None:
    with pytest.raises(deepatlas.ConfigError, match="at least two runs"):
        deepatlas.ensemble([members[0].id], runs_dir=members[0].path.parent)


def test_a_run_listed_twice_and_an_unknown_split_are_refused(members: list[Any]) -> None:
    store = members[0].path.parent
    with pytest.raises(deepatlas.ConfigError, match=rf"{members[0].id} listed more than once"):
        deepatlas.ensemble([members[0].id, members[1].id, members[0].id], runs_dir=store)
    with pytest.raises(deepatlas.ConfigError, match=r"--split: 'tset' is not a split \(allowed: test, val, train\)"):
        deepatlas.ensemble([members[0].id, members[1].id], runs_dir=store).evaluate("tset")


def test_cli_prints_members_and_the_ensemble(members: list[Any]) -> None:
    runs_dir = str(members[0].path.parent)
    result = CliRunner().invoke(app, ["ensemble", members[0].id, members[1].id, "--runs-dir", runs_dir])
    assert result.exit_code == 0, result.output
    assert members[0].id in result.output and "ensemble of 2" in result.output and "member mean" in result.output
    shown = CliRunner().invoke(app, ["ensemble", members[0].id, members[1].id, "--runs-dir", runs_dir, "--json"])
    data = json.loads(shown.output)
    assert data["ensemble"]["nll"] <= data["member_mean"]["nll"] and set(data["ensemble"]) == {"accuracy", "nll", "ece"}
