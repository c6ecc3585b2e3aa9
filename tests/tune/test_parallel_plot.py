"""The study's parallel-coordinates figure: our drawing of the completed trials' parameters."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import optuna
import pytest

from deepatlas.tune.report import parallel_plot, write_plots


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("optim.lr", 1e-4, 0.3, log=True)
        name = trial.suggest_categorical("optim.name", ["adamw", "sgd"])
        if name == "sgd":
            trial.suggest_float("optim.momentum", 0.5, 0.99)
        if trial.number == 3:
            raise optuna.TrialPruned()
        return lr

    study.optimize(objective, n_trials=12)
    return study


def test_parallel_plot_draws_each_completed_trial_through_its_parameters() -> None:
    study = _study()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig = parallel_plot(study, 0, {"name": "val/nll", "direction": "minimize"})
    ax = fig.axes[0]
    assert len(ax.lines) == len(complete) == 11  # the pruned trial is not drawn
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == ["val/nll", "optim\nlr", "optim\nname", "optim\nmomentum"]
    labels = {t.get_text() for t in ax.texts}
    assert {"adamw", "sgd", "unset"} <= labels  # momentum is unset where the optimizer is adamw
    assert "0.001" in labels or "0.01" in labels  # decades on the log-scale axis
    # the objective is the learning rate: the best trial, drawn last, is at the bottom of both axes
    assert list(ax.lines[-1].get_ydata()[:2]) == pytest.approx([0.0, 0.0])
    plt.close(fig)


def test_write_plots_writes_our_parallel_figure(tmp_path: Path) -> None:
    written = write_plots(_study(), [{"name": "val/nll", "direction": "minimize"}], tmp_path)
    assert sorted(p.name for p in written) == ["history.png", "parallel.png"]
    assert (tmp_path / "parallel.png").read_bytes()[:4] == b"\x89PNG"
