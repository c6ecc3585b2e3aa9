"""lifelines' Cox proportional-hazards model (Cox 1972; Efron's ties): the classical baseline of a survival recipe.

The model sees the same preprocessed columns as the network (standardised numbers, missing-value
indicators, category codes as numbers) and the same training rows (train + validation), and is
scored on the fold's test rows with the task's metrics, defined as the task defines them
(:mod:`deepatlas.tasks.survival`): Harrell's C of the linear predictor, Uno's C truncated at the
90th percentile of training event times, and the integrated Brier score of lifelines' survival
curves over the training event-time deciles, both with the censoring distribution of the training split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .boosting import _fit_rows
from .registry import register_baseline


def coxph(data: Any, task: Any, penalizer: float = 0.0) -> dict[str, float]:
    """Test c_index, uno_c and ibs of a lifelines CoxPHFitter fitted on the fold's training rows."""
    import pandas as pd
    from lifelines import CoxPHFitter

    from ..metrics.survival import harrell_c, integrated_brier_score, uno_c
    from ..tasks.survival import ibs_grid, uno_tau

    x, y = _fit_rows(data)
    x_test, y_test = data.arrays("test")
    columns = [f"x{j}" for j in range(x.shape[1])]
    keep = x.std(0) > 0  # a constant column (an unseen-category code) has no coefficient
    frame = pd.DataFrame(x[:, keep].astype(np.float64), columns=np.array(columns)[keep])
    frame["T"], frame["E"] = y[:, 0].astype(np.float64), y[:, 1].astype(np.float64)
    model = CoxPHFitter(penalizer=penalizer).fit(frame, "T", "E")
    test = pd.DataFrame(x_test[:, keep].astype(np.float64), columns=np.array(columns)[keep])
    risk = np.log(model.predict_partial_hazard(test).to_numpy())
    time, event = y_test[:, 0].astype(np.float64), y_test[:, 1] > 0
    train_y = data.split("train").targets.numpy()
    train_t, train_e = train_y[:, 0].astype(np.float64), train_y[:, 1] > 0
    grid = ibs_grid(task.meta, time)
    survival = model.predict_survival_function(test, times=grid).to_numpy().T  # (N, len(grid))
    return {
        "c_index": harrell_c(time, event, risk),
        "uno_c": uno_c(train_t, train_e, time, event, risk, tau=uno_tau(task.meta)),
        "ibs": integrated_brier_score(train_t, train_e, time, event, survival, grid),
    }


register_baseline("coxph", coxph, ("survival",), doc="lifelines CoxPHFitter (Efron ties) on the same preprocessed columns")
