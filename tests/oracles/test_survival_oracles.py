"""DeepSurv without hidden layers is a Cox model: lifelines, statsmodels and scikit-survival as oracles.

The network (tabular-mlp, depth 0: one linear layer) is fitted to convergence on lifelines' Rossi
recidivism data through our partial-likelihood loss with torch's L-BFGS (the engine has no
second-order optimizer; what is verified is the likelihood and its optimum), and compared with
CoxPHFitter and PHReg fitted on the same standardised training matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from sksurv.metrics import concordance_index_ipcw
from sksurv.metrics import integrated_brier_score as sk_ibs
from sksurv.util import Surv
from statsmodels.duration.hazard_regression import PHReg

from deepatlas.build import build
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.data.tabular import TabularBatch
from deepatlas.metrics.survival import harrell_c, integrated_brier_score, uno_c
from deepatlas.tasks.survival import ibs_grid, uno_tau


def linear_cox(ties: str) -> tuple[Any, Any, Any]:
    config = load_recipe("recipes/deepsurv-gbsg2.yaml", [
        "data.name=rossi", "model.depth=0", "model.dropout=0", "optim.weight_decay=0", f"task.ties={ties}",
    ])
    data = load_dataset(config.data)
    built = build(config, data.meta)
    return data, built.task, built.model.double()


def double_inputs(data: Any, split: str = "train") -> tuple[TabularBatch, torch.Tensor]:
    s = data.split(split)
    return TabularBatch(s.inputs.numeric.double(), s.inputs.categorical), s.targets.double()


def fit_lbfgs(task: Any, model: Any, data: Any) -> float:
    x, y = double_inputs(data)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-12,
                                  tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = task.loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(3):
        optimizer.step(closure)
    with torch.no_grad():
        return float(task.loss(model(x), y)) * float(y[:, 1].sum())  # total negative partial log-likelihood


def frame(data: Any, split: str = "train") -> pd.DataFrame:
    x, y = data.arrays(split)
    df = pd.DataFrame(x.astype(np.float64), columns=data.meta["features"])
    df["T"], df["E"] = y[:, 0].astype(np.float64), y[:, 1].astype(np.float64)
    return df


def test_efron_fit_recovers_lifelines_and_statsmodels() -> None:
    data, task, model = linear_cox("efron")
    nll = fit_lbfgs(task, model, data)
    df = frame(data)
    cph = CoxPHFitter().fit(df, "T", "E")
    ours = model.head.weight.detach().numpy()[0]
    np.testing.assert_allclose(ours, cph.params_.to_numpy(), atol=1e-3)
    assert -nll == pytest.approx(cph.log_likelihood_, abs=1e-6)
    x = df[data.meta["features"]].to_numpy()
    ph = PHReg(df["T"].to_numpy(), x, status=df["E"].to_numpy(), ties="efron").fit()
    np.testing.assert_allclose(ours, ph.params, atol=1e-3)
    assert -nll == pytest.approx(ph.llf, abs=1e-6)


def test_breslow_fit_recovers_statsmodels() -> None:
    data, task, model = linear_cox("breslow")
    nll = fit_lbfgs(task, model, data)
    df = frame(data)
    x = df[data.meta["features"]].to_numpy()
    ph = PHReg(df["T"].to_numpy(), x, status=df["E"].to_numpy(), ties="breslow").fit()
    np.testing.assert_allclose(model.head.weight.detach().numpy()[0], ph.params, atol=1e-3)
    assert -nll == pytest.approx(ph.llf, abs=1e-6)
    # the two tie corrections differ on Rossi (weeks: many tied arrests), so the test can tell them apart
    efron = PHReg(df["T"].to_numpy(), x, status=df["E"].to_numpy(), ties="efron").fit()
    assert abs(efron.llf - ph.llf) > 1e-2


def test_breslow_baseline_survival_equals_lifelines() -> None:
    data, task, model = linear_cox("efron")
    df = frame(data)
    cph = CoxPHFitter().fit(df, "T", "E")
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(cph.params_.to_numpy())[None])
        model.head.bias.zero_()
    model.float()
    task.load_calibration(task.calibrate(model.eval(), data, torch.device("cpu")))
    times = cph.baseline_survival_.index.to_numpy()
    centre = float(df[data.meta["features"]].mean().to_numpy() @ cph.params_.to_numpy())  # lifelines centres X
    ours = task.survival_from_outputs(torch.full((1, 1), centre), torch.as_tensor(times))[0].numpy()
    np.testing.assert_allclose(ours, cph.baseline_survival_.iloc[:, 0].to_numpy(), rtol=1e-5)
    # and a patient's curve: lifelines' predicted survival at its own event times
    test = frame(data, "test")
    event_times = np.unique(df.loc[df["E"] > 0, "T"].to_numpy())
    x_test, _ = data.arrays("test")
    curve = task.predict_survival(model, data.split("test").inputs, torch.as_tensor(event_times)).numpy()
    expected = cph.predict_survival_function(test[data.meta["features"]], times=event_times).to_numpy().T
    np.testing.assert_allclose(curve, expected, rtol=1e-4, atol=1e-6)
    assert x_test.shape[0] == curve.shape[0]


def test_task_metrics_equal_lifelines_and_sksurv_on_the_test_split() -> None:
    data, task, model = linear_cox("efron")
    fit_lbfgs(task, model, data)
    model.float()
    task.load_calibration(task.calibrate(model.eval(), data, torch.device("cpu")))
    from deepatlas.tasks import accumulate

    metrics = task.reduce(accumulate(task, model, data.eval_batches("test", torch.device("cpu"))))
    split = data.split("test")
    with torch.no_grad():
        risk = model(split.inputs)[:, 0].double().numpy()
    time, event = split.targets[:, 0].double().numpy(), split.targets[:, 1].numpy() > 0
    train = data.split("train").targets.double().numpy()
    y_train, y_test = Surv.from_arrays(train[:, 1] > 0, train[:, 0]), Surv.from_arrays(event, time)
    assert metrics["c_index"] == concordance_index(time, -risk, event)
    assert metrics["c_index"] == harrell_c(time, event, risk)
    tau = uno_tau(data.meta)
    assert metrics["uno_c"] == pytest.approx(concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0], rel=1e-12)
    assert metrics["uno_c"] == uno_c(train[:, 0], train[:, 1] > 0, time, event, risk, tau=tau)
    grid = ibs_grid(data.meta, time)
    surv = task.predict_survival(model, split.inputs, torch.as_tensor(grid)).double().numpy()
    assert metrics["ibs"] == pytest.approx(sk_ibs(y_train, y_test, surv, grid), rel=1e-10)
    assert metrics["ibs"] == pytest.approx(integrated_brier_score(train[:, 0], train[:, 1] > 0, time, event, surv, grid), rel=1e-12)
    assert 0.55 < metrics["c_index"] < 0.8
