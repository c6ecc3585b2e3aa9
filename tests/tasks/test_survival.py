"""Survival tasks: the losses against direct sums, the curves' shape, training end to end on GBSG2."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lifelines.datasets import load_gbsg2

import deepatlas
from deepatlas.tasks.survival import (
    DeepHit,
    DeepHitConfig,
    DiscreteConfig,
    LogisticHazard,
    breslow,
    cox_partial_nll,
)

META = {"target_type": "survival", "duration_max": 30.0, "event_time_quantiles": list(np.linspace(1.0, 29.0, 101))}


def tied(n: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    eta = torch.randn(n, generator=g, dtype=torch.float64) * 2
    time = torch.randint(1, 12, (n,), generator=g).double()
    event = (torch.rand(n, generator=g) < 0.6).double()
    return eta, time, event


def naive_cox(eta: torch.Tensor, time: torch.Tensor, event: torch.Tensor, ties: str) -> float:
    total = 0.0
    for t in sorted(set(time[event > 0].tolist())):
        dead = (time == t) & (event > 0)
        risk = torch.exp(eta[time >= t]).sum().item()
        tied_sum = torch.exp(eta[dead]).sum().item()
        d = int(dead.sum())
        total += eta[dead].sum().item()
        for ell in range(d):
            total -= math.log(risk - (ell / d if ties == "efron" else 0.0) * tied_sum)
    return -total / float(event.sum())


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_loss_equals_the_direct_sum_and_ignores_row_order(ties: str) -> None:
    eta, time, event = tied()
    loss = cox_partial_nll(eta, time, event, ties)
    assert loss.item() == pytest.approx(naive_cox(eta, time, event, ties), rel=1e-12)
    perm = torch.randperm(len(eta))
    assert cox_partial_nll(eta[perm], time[perm], event[perm], ties).item() == pytest.approx(loss.item(), rel=1e-12)
    assert cox_partial_nll(eta + 5.0, time, event, ties).item() == pytest.approx(loss.item(), rel=1e-10)  # no intercept
    assert cox_partial_nll(eta * 300, time, event, ties).isfinite()  # log-sum-exp: no overflow


def test_cox_loss_without_events_is_zero_with_a_gradient() -> None:
    eta = torch.randn(5, requires_grad=True)
    loss = cox_partial_nll(eta, torch.arange(5.0), torch.zeros(5))
    loss.backward()
    assert loss.item() == 0.0 and eta.grad is not None


def test_breslow_cumulative_hazard_by_hand() -> None:
    eta, time, event = tied()
    times, cumhaz = breslow(eta, time, event)
    expected, running = [], 0.0
    for t in sorted(set(time[event > 0].tolist())):
        running += float(((time == t) & (event > 0)).sum()) / torch.exp(eta[time >= t]).sum().item()
        expected.append(running)
    np.testing.assert_allclose(times.numpy(), sorted(set(time[event > 0].tolist())))
    np.testing.assert_allclose(cumhaz.numpy(), expected, rtol=1e-12)


def test_logistic_hazard_loss_is_the_discrete_likelihood() -> None:
    task = LogisticHazard(DiscreteConfig(bins=5), META)
    k = task.model_meta()["num_outputs"]
    out = torch.randn(40, k, dtype=torch.float64)
    _, time, event = tied(40, 1)
    time = time * 3  # some rows after the last cut
    h = torch.sigmoid(out)
    cuts = task.cuts.tolist()
    total = 0.0
    for i in range(40):
        j = sum(c < time[i].item() for c in cuts)  # the interval (c_{j-1}, c_j] holding T_i; K: after the grid
        total -= sum(math.log(1 - h[i, m].item()) for m in range(min(j, k)))
        if event[i] > 0 and j < k:
            total -= math.log(h[i, j].item())
    assert task.loss(out, torch.stack([time, event], 1)).item() == pytest.approx(total / 40, rel=1e-10)


def test_deephit_loss_is_likelihood_plus_ranking() -> None:
    config = DeepHitConfig(bins=4, alpha=0.3, sigma=0.5)
    task = DeepHit(config, META)
    k = task.model_meta()["num_outputs"]
    assert k == len(task.cuts) + 1
    out = torch.randn(30, k, dtype=torch.float64)
    _, time, event = tied(30, 2)
    time = time * 3
    p = torch.softmax(out, 1)
    cuts = task.cuts.tolist()
    bins = [sum(c < t for c in cuts) for t in time.tolist()]
    nll = -sum(math.log(p[i, bins[i]] if event[i] > 0 else p[i, bins[i]:].sum()) for i in range(30)) / 30
    num, den = 0.0, 0
    for i in range(30):
        for j in range(30):
            if event[i] > 0 and time[i] < time[j]:
                fi, fj = p[i, : bins[i] + 1].sum().item(), p[j, : bins[i] + 1].sum().item()
                num += math.exp(-(fi - fj) / 0.5)
                den += 1
    expected = 0.3 * nll + 0.7 * num / den
    assert task.loss(out, torch.stack([time, event], 1)).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("cls,config", [(LogisticHazard, DiscreteConfig(bins=6)), (DeepHit, DeepHitConfig(bins=6))])
def test_discrete_survival_curves_start_at_one_and_decrease(cls: type, config: object) -> None:
    task = cls(config, META)
    out = torch.randn(8, task.model_meta()["num_outputs"])
    times = torch.linspace(0.0, 40.0, 50)
    surv = task.survival_from_outputs(out, times)
    assert surv.shape == (8, 50)
    assert torch.all(surv[:, 0] == 1.0)
    assert torch.all(surv[:, 1:] <= surv[:, :-1] + 1e-12) and torch.all(surv >= -1e-12)
    grid = task.grid_survival(out.double())
    assert torch.allclose(task.survival_from_outputs(out, task.cuts), grid.float().double(), atol=1e-6)


def test_deepsurv_trains_on_gbsg2_and_predicts_survival_for_raw_rows(tmp_path: Path) -> None:
    run = deepatlas.train("recipes/deepsurv-gbsg2.yaml", ["train.epochs=15"], runs_dir=tmp_path, progress=False)
    test = run.summary["eval"]["test"]
    assert test["c_index"] > 0.6 and 0.6 < test["uno_c"] < 0.8 and 0.1 < test["ibs"] < 0.25
    epochs = run.metrics("epoch")
    assert epochs[-1]["train/loss"] < epochs[0]["train/loss"]
    predictor = deepatlas.load(run.id, runs_dir=tmp_path)
    rows = load_gbsg2().head(4)
    _times, surv = predictor.predict_survival_function(rows, times=[0.0, 365.0, 730.0, 1825.0])
    assert surv.shape == (4, 4) and np.all(surv[:, 0] == 1.0) and np.all(np.diff(surv, axis=1) <= 0)
    risk = predictor.predict(rows)
    assert risk.shape == (4,)
    assert np.array_equal(np.argsort(risk), np.argsort(-surv[:, 2]))  # a higher risk: a lower survival curve


@pytest.mark.parametrize("recipe", ["logistic-hazard-gbsg2", "deephit-gbsg2"])
def test_discrete_recipes_train_and_predict(recipe: str, tmp_path: Path) -> None:
    run = deepatlas.train(f"recipes/{recipe}.yaml", ["train.epochs=30"], runs_dir=tmp_path, progress=False)
    test = run.summary["eval"]["test"]
    assert test["c_index"] > 0.6 and np.isfinite(test["ibs"])
    _, surv = deepatlas.load(run.id, runs_dir=tmp_path).predict_survival_function(load_gbsg2().head(3))
    assert surv.shape == (3, 101) and np.all(np.diff(surv, axis=1) <= 1e-7)


def test_coxph_baseline_scores_a_fold_with_the_task_metrics() -> None:
    from deepatlas.baselines.coxph import coxph
    from deepatlas.build import build_task
    from deepatlas.config import load_recipe
    from deepatlas.data import load_dataset

    config = load_recipe("recipes/deepsurv-gbsg2.yaml", ["data.folds=5", "data.fold=1"])
    data = load_dataset(config.data)
    task = build_task(config, data.meta)
    scores = coxph(data, task)
    assert set(scores) == {"c_index", "uno_c", "ibs"} <= set(task.metric_directions())
    assert 0.6 < scores["c_index"] < 0.8 and 0.1 < scores["ibs"] < 0.25
