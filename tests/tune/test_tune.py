"""Hyperparameter search: the `search:` section, trials as overrides, the study driver and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FixedTrial, TrialState
from typer.testing import CliRunner

import deepatlas
from deepatlas.cli import app
from deepatlas.config import load_recipe, parse_override
from deepatlas.errors import ConfigError
from deepatlas.tasks.classification import Classification
from deepatlas.tune.callbacks import PruningCallback
from deepatlas.tune.space import format_value, parse_search, resolve_monitor, trial_overrides
from deepatlas.tune.study import make_pruner, make_sampler, storage_url
from tests.conftest import tiny_recipe

SPACE = {
    "optim.lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True},
    "model.depth": {"type": "int", "low": 1, "high": 2},
}


@pytest.fixture(autouse=True)
def _default_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPATLAS_STUDY_STORAGE", raising=False)  # studies go to <runs_dir>/studies.db


def recipe(tmp_path: Path, search: dict[str, Any], name: str = "digits-search") -> str:
    """A recipe that extends quickstart with a search section."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"extends": "quickstart", "search": search}))
    return str(path)


def tiny(**overrides: object) -> list[str]:
    """Two quick epochs, no test evaluation, and no searched key among the overrides."""
    return [o for o in tiny_recipe(**{"train.test": "false", **overrides}) if not o.startswith("optim.lr=")]


def space_error(search: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_search(search, ("val/accuracy", "max"))
    return str(info.value)


# --------------------------------------------------------------------------- the search section


def test_search_parses_objectives_and_space() -> None:
    spec = parse_search({"space": SPACE}, ("val/accuracy", "max"))
    assert [(o.name, o.direction) for o in spec.objectives] == [("val/accuracy", "maximize")]
    assert [p.name for p in spec.space] == ["optim.lr", "model.depth"] and spec.space[0].log
    directions = Classification.metric_directions()  # the task declares them: nothing is guessed from a name
    spec = parse_search({"metric": "nll", "space": SPACE}, ("val/accuracy", "max"), directions)
    assert (spec.objectives[0].name, spec.objectives[0].direction) == ("val/nll", "minimize")
    with pytest.raises(ConfigError, match=r"search.metric: 'val/nl' is not a metric .*Did you mean 'nll'"):
        parse_search({"metric": "nl", "space": SPACE}, ("val/accuracy", "max"), directions)
    spec = parse_search({"objectives": ["val/accuracy", "params", "latency_ms"], "space": SPACE}, ("val/accuracy", "max"))
    assert spec.directions == ["maximize", "minimize", "minimize"] and spec.multi_objective
    spec = parse_search({"metric": "val/accuracy", "direction": "min", "space": {"model.name": ["mlp", "lenet5"]}})
    assert spec.directions == ["minimize"] and spec.space[0].choices == ("mlp", "lenet5")


def test_default_objective_is_the_monitored_metric() -> None:
    assert resolve_monitor(load_recipe("quickstart")) == ("val/accuracy", "max")
    assert resolve_monitor(load_recipe("quickstart", ["train.monitor=nll"])) == ("val/nll", "min")


@pytest.mark.parametrize(("search", "message"), [
    ({"space": {"optim.lr": {"type": "floaty", "low": 0.1, "high": 1.0}}},
     "search.space.optim.lr.type: 'floaty' is not allowed (allowed: categorical, float, int). Did you mean 'float'?"),
    ({"space": {"optim.lr": {"type": "float", "low": 0.1, "high": 1.0e-4}}},
     "search.space.optim.lr: low (0.1) is greater than high (0.0001)"),
    ({"space": {"optim.lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}},
     "search.space.optim.lr.low: must be > 0 on a log scale"),
    ({"space": {"optim.lr": {"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}}},
     "search.space.optim.lr.step: cannot be combined with log"),
    ({"space": {"model.width": {"type": "int", "low": 64, "high": 1000, "step": 64}}},
     "high - low must be a multiple of step 64 (e.g. high: 960)"),
    ({"space": {"model.name": {"type": "categorical", "choice": ["mlp"]}}},
     "search.space.model.name.choice: unknown key (allowed here: choices, type, when). Did you mean 'choices'?"),
    ({"space": {"optm.lr": {"type": "float", "low": 0.1, "high": 1.0}}},
     "search.space.optm.lr: 'optm' is not a recipe section that can be searched"),
    ({"spaces": {}}, "search.spaces: unknown key (allowed here: direction, directions, metric, objectives, space). Did you mean 'space'?"),
    ({"metric": "accuracy", "direction": "up", "space": SPACE}, "search.direction: 'up' is not allowed (allowed: max, min)."),
    ({"metric": "accuracy", "objectives": ["params"], "space": SPACE}, "give either metric/direction"),
    ({"objectives": ["val/accuracy", "parms"], "space": SPACE}, "Did you mean 'params'?"),
    ({"metric": "accuracy"}, "search.space: required"),
    ({"space": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "when": {"model.name": "mlp"}},
                "model.name": ["mlp", "lenet5"]}},
     "search.space.model.dropout.when: 'model.name' is not a parameter defined above this one"),
    ({"space": {"model.name": ["mlp", "lenet5"],
                "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "when": {"model.name": "mpl"}}}},
     "search.space.model.dropout.when: model.name never takes 'mpl' (its values: lenet5, mlp). Did you mean 'mlp'?"),
])
def test_search_errors_are_one_line_with_key_and_fix(search: dict[str, Any], message: str) -> None:
    text = space_error(search)
    assert message in text and "\n" not in text


def test_conditional_parameter_only_when_its_condition_holds() -> None:
    spec = parse_search({"space": {
        "model.name": {"type": "categorical", "choices": ["mlp", "lenet5"]},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "when": {"model.name": "mlp"}},
        "optim.lr": {"type": "float", "low": 1.0e-5, "high": 0.1, "log": True},
    }})
    mlp = trial_overrides(spec.space, FixedTrial({"model.name": "mlp", "model.dropout": 0.25, "optim.lr": 1e-05}))
    assert mlp == ["model.name=mlp", "model.dropout=0.25", "optim.lr=1.0e-05"]
    # FixedTrial raises if asked for a parameter it lacks: lenet5 never asks for model.dropout
    lenet = trial_overrides(spec.space, FixedTrial({"model.name": "lenet5", "optim.lr": 0.01}))
    assert lenet == ["model.name=lenet5", "optim.lr=0.01"]


def test_overrides_read_back_as_the_sampled_values() -> None:
    for value in (1e-05, 0.1 + 0.2, 64, "mlp", "true", None, True, 3.0e20):
        assert parse_override(f"k={format_value(value)}")[1] == value


def test_training_ignores_the_search_section(tmp_path: Path) -> None:
    path = recipe(tmp_path, {"space": SPACE})
    config = load_recipe(path)
    assert config.search == {"space": SPACE} and config.override(["train.epochs=1"]).search == config.search
    run = deepatlas.train(path, tiny(), runs_dir=tmp_path / "runs", progress=False)
    assert run.status == "completed" and run.config.optim.lr == 0.005  # the recipe's, not a searched one


def test_unknown_searched_key_fails_up_front_like_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as cli_error:
        load_recipe("quickstart", ["optim.lrr=0.001"])
    path = recipe(tmp_path, {"space": {"optim.lrr": {"type": "float", "low": 1e-3, "high": 0.1}}})
    with pytest.raises(ConfigError) as info:
        deepatlas.tune(path, tiny(), trials=1, runs_dir=tmp_path / "runs")
    assert str(cli_error.value) in str(info.value) and "Did you mean 'lr'?" in str(info.value)
    assert not (tmp_path / "runs" / "studies.db").exists() or not optuna.get_all_study_names(storage_url(None, tmp_path / "runs"))


def test_samplers_and_pruners_by_name() -> None:
    spec = parse_search({"space": {"model.depth": {"type": "int", "low": 1, "high": 3}, "model.name": ["mlp"]}})
    assert isinstance(make_sampler("grid", spec, 0), optuna.samplers.GridSampler)
    assert isinstance(make_sampler("nsga2", spec, 0), optuna.samplers.NSGAIISampler)
    with pytest.raises(ConfigError, match="--sampler: 'tpr' is not a sampler .* Did you mean 'tpe'"):
        make_sampler("tpr", spec, 0)
    with pytest.raises(ConfigError, match="the grid sampler needs a step"):
        make_sampler("grid", parse_search({"space": SPACE}), 0)
    config = load_recipe("quickstart")
    assert isinstance(make_pruner("median", spec, config), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband", spec, config), optuna.pruners.HyperbandPruner)
    multi = parse_search({"objectives": ["val/accuracy", "params"], "space": SPACE}, ("val/accuracy", "max"))
    with pytest.raises(ConfigError, match="--pruner asha: pruning compares a validation metric of one objective"):
        make_pruner("asha", multi, config)


# --------------------------------------------------------------------------- studies


def test_tiny_study_records_runs_linked_to_trials(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = deepatlas.tune(recipe(tmp_path, {"space": SPACE}), tiny(), trials=3, sampler="random", runs_dir=runs)
    assert [t["number"] for t in result.trials] == [0, 1, 2]
    assert all(t["state"] == "complete" for t in result.trials)
    for t in result.trials:
        run = deepatlas.open_run(t["run_id"], runs)
        link = json.loads((run.path / "trial.json").read_text())
        assert link["study"] == result.name == "digits-search" and link["trial"] == t["number"]
        assert link["state"] == "complete" and link["values"] == t["values"]
        assert run.config.optim.lr == t["params"]["optim.lr"] and run.config.model.options.depth == t["params"]["model.depth"]
        assert run.config.search is None  # a trial's run is a plain run
        assert t["values"][0] == run.summary["best"]["value"]  # the objective is the summary's best
        flops = run.summary["flops"]["train_per_sample"] * run.summary["progress"]["samples"]
        assert t["compute"]["train_flops"] == flops and t["compute"]["cpu_s"] > 0
    best = result.best_trial
    assert best["values"][0] == max(t["values"][0] for t in result.trials)
    assert result.storage == f"sqlite:///{(runs / 'studies.db').resolve()}"
    assert json.loads((Path(result.folder) / "summary.json").read_text())["name"] == "digits-search"


class _StubTrial:
    """Reports are recorded; prunes from ``prune_at`` (epoch) on."""

    def __init__(self, prune_at: int) -> None:
        self.prune_at, self.reports = prune_at, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.reports[-1][0] >= self.prune_at


def test_pruning_callback_reports_each_validation_and_stops_the_run(tmp_path: Path) -> None:
    trial = _StubTrial(prune_at=1)
    run = deepatlas.train("quickstart", tiny(**{"train.epochs": 4}), runs_dir=tmp_path / "runs",
                          callbacks=[PruningCallback(trial, "val/accuracy")], progress=False)
    assert run.status == "pruned" and "pruned at epoch 1" in run.summary["reason"]
    assert [step for step, _ in trial.reports] == [1] and run.summary["progress"]["epoch"] == 1
    assert run.checkpoint("last").is_file()


class _PruneAfterFirst(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number >= 1


def test_pruned_trials_are_told_pruned_and_their_savings_estimated(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = recipe(tmp_path, {"space": SPACE})
    result = deepatlas.tune(path, tiny(**{"train.epochs": 3}), trials=3, sampler="random", pruner=_PruneAfterFirst(),
                            runs_dir=runs)
    assert [t["state"] for t in result.trials] == ["complete", "pruned", "pruned"]
    for t in result.trials[1:]:
        assert deepatlas.open_run(t["run_id"], runs).status == "pruned"
        assert (t["compute"]["epochs"], t["compute"]["epochs_total"]) == (1, 3)
    compute = result.compute
    used = sum(t["compute"]["cpu_s"] for t in result.trials[1:])
    assert compute["pruned_trials"] == 2 and compute["saved"]["cpu_s"] == pytest.approx(2 * used)
    energy = sum(t["compute"]["energy_j"] for t in result.trials)  # per run, summed over the study
    assert compute["total"]["energy_j"] == pytest.approx(energy) and energy > 0
    assert compute["saved"]["energy_j"] == pytest.approx(2 * sum(t["compute"]["energy_j"] for t in result.trials[1:]))
    study = optuna.load_study(study_name=result.name, storage=storage_url(None, runs))
    assert study.trials[1].intermediate_values.keys() == {1}


def test_failed_trial_is_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    # train.monitor=bogus is refused when the task is built, before the trial's run folder exists
    path = recipe(tmp_path, {"space": {"train.monitor": ["accuracy", "bogus"]}})
    result = deepatlas.tune(path, tiny(), trials=5, sampler="grid", runs_dir=tmp_path / "runs")
    states = {t["params"]["train.monitor"]: t for t in result.trials}
    assert len(result.trials) == 2  # the grid is exhausted after its two points
    assert states["bogus"]["state"] == "fail" and "train.monitor: 'val/bogus' is not a validation metric" in states["bogus"]["error"]
    assert states["bogus"]["run_id"] is None  # no run was created for it
    assert len(deepatlas.list_runs(tmp_path / "runs")) == 1  # only the good trial's run
    assert states["accuracy"]["state"] == "complete" and result.best_trial["number"] == states["accuracy"]["number"]


def test_study_resumes_with_the_same_name_and_storage(tmp_path: Path) -> None:
    runs, path = tmp_path / "runs", recipe(tmp_path, {"space": SPACE})
    storage = storage_url(None, tmp_path / "elsewhere")
    first = deepatlas.tune(path, tiny(), trials=2, sampler="random", study_name="s", storage=storage, runs_dir=runs)
    second = deepatlas.tune(path, tiny(), trials=1, sampler="random", study_name="s", storage=storage, runs_dir=runs)
    assert len(first.trials) == 2 and [t["number"] for t in second.trials] == [0, 1, 2]
    assert second.trials[2]["params"] not in [t["params"] for t in first.trials]  # the seed moved on
    assert len({t["run_id"] for t in second.trials}) == 3
    with pytest.raises(ConfigError, match=r"--study s: exists in .* for another config \(train.epochs=2 there, 3 now\)"):
        deepatlas.tune(path, tiny(**{"train.epochs": 3}), trials=1, study_name="s", storage=storage, runs_dir=runs)


def test_stale_running_trial_of_a_dead_process_becomes_fail(tmp_path: Path) -> None:
    import socket

    from deepatlas.tracking import Run
    from deepatlas.tune.study import _fail_stale_trials

    study = optuna.create_study(storage=storage_url(None, tmp_path), study_name="x")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "trial-run"  # the run the killed worker left `running`
    folder.mkdir()
    (folder / "config.yaml").write_text("{}")
    Run(folder).write_summary({"id": folder.name, "status": "running", "pid": int(dead.stdout)})
    trial = study.ask()
    trial.set_user_attr("hostname", socket.gethostname())
    trial.set_user_attr("pid", int(dead.stdout))
    trial.set_user_attr("run_id", folder.name)
    _fail_stale_trials(study, tmp_path)
    assert study.trials[0].state == TrialState.FAIL
    summary = Run(folder).summary
    assert summary["status"] == "failed" and "died" in summary["reason"] and summary["pid"] is None


def test_multi_objective_nsga2_returns_the_pareto_front(tmp_path: Path) -> None:
    search = {"objectives": ["val/accuracy", "params"],
              "space": {"model.width": {"type": "int", "low": 16, "high": 128, "step": 16}}}
    result = deepatlas.tune(recipe(tmp_path, search), tiny(), trials=3, sampler="nsga2", runs_dir=tmp_path / "runs")
    assert [o["direction"] for o in result.objectives] == ["maximize", "minimize"]
    assert result.best and result.best_trial is None
    complete = [t["values"] for t in result.trials if t["state"] == "complete"]
    for row in result.best:
        accuracy, params = row["values"]
        assert params == deepatlas.open_run(row["run_id"], tmp_path / "runs").summary["params"]["total"]
        assert not any(a >= accuracy and p <= params and (a, p) != (accuracy, params) for a, p in complete)
    report = deepatlas.study_report(result.name, runs_dir=tmp_path / "runs")
    assert any(f.endswith("pareto.png") for f in report["figures"])


def test_latency_is_measured_on_the_trained_model(tmp_path: Path) -> None:
    from deepatlas.tune.objectives import objective_values
    from deepatlas.tune.space import Objective

    run = deepatlas.train("quickstart", tiny(**{"train.epochs": 1}), runs_dir=tmp_path / "runs", progress=False)
    accuracy, latency, flops = objective_values(
        run, [Objective("val/accuracy", "maximize"), Objective("latency_ms", "minimize"), Objective("flops", "minimize")]
    )
    assert accuracy == run.summary["best"]["value"] and 0 < latency < 1000
    assert flops == run.summary["flops"]["forward_per_sample"]


def test_tune_is_callable_from_the_package() -> None:
    import deepatlas.tune as package

    assert callable(deepatlas.tune) and callable(package) and package.tune is deepatlas.tune.tune


# --------------------------------------------------------------------------- command line


def test_cli_tune_studies_and_show(tmp_path: Path) -> None:
    runner = CliRunner()
    runs, path = str(tmp_path / "runs"), recipe(tmp_path, {"space": SPACE})
    result = runner.invoke(app, ["tune", path, *tiny(), "--trials", "2", "--sampler", "random", "--runs-dir", runs])
    assert result.exit_code == 0, result.output
    assert "study digits-search" in result.output and "best trial" in result.output and "complete" in result.output
    listed = runner.invoke(app, ["studies", "--runs-dir", runs, "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["name"], row["trials"], row["complete"]) == ("digits-search", 2, 2)
    shown = runner.invoke(app, ["studies", "show", "digits-search", "--runs-dir", runs])
    assert shown.exit_code == 0, shown.output
    assert "best trials (2)" in shown.output and "compute:" in shown.output and "no trial was pruned" in shown.output
    folder = Path(runs) / "studies" / "digits-search"
    assert (folder / "history.png").is_file() and (folder / "parallel.png").is_file() and (folder / "report.json").is_file()
    missing = runner.invoke(app, ["studies", "show", "digits-serch", "--runs-dir", runs])
    assert isinstance(missing.exception, ConfigError) and "Did you mean 'digits-search'?" in str(missing.exception)


def test_cli_bad_sampler_is_one_line_exit_2(tmp_path: Path) -> None:
    path = recipe(tmp_path, {"space": SPACE})
    result = subprocess.run(
        [sys.executable, "-m", "deepatlas", "tune", path, "--trials", "1", "--sampler", "tpr", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "--sampler: 'tpr' is not a sampler" in result.stderr and "Traceback" not in result.stderr
