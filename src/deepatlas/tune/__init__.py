"""Hyperparameter search with Optuna: a recipe's ``search:`` space, many ordinary runs, one study.

::

    import deepatlas
    result = deepatlas.tune("quickstart", ["train.epochs=5"], trials=20, pruner="median")
    print(result.best_trial["params"], result.best_trial["run_id"])

Optuna stays outside the engine: a trial becomes recipe overrides (:mod:`.space`), each trial is a
normal run trained by :func:`deepatlas.api.train`, and pruning is an engine callback that reports
and asks the trainer to stop (:mod:`.callbacks`). Optuna is imported only when a study runs.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .report import list_studies, open_study, study_report
from .space import Objective, Param, SearchSpec, parse_search, trial_overrides
from .study import PRUNERS, SAMPLERS, StudyResult, tune

__all__ = [
    "PRUNERS", "SAMPLERS", "Objective", "Param", "SearchSpec", "StudyResult", "list_studies", "open_study",
    "parse_search", "study_report", "trial_overrides", "tune",
]


class _CallableModule(types.ModuleType):
    """``deepatlas.tune`` names both this package and the function: importing the package before the
    lazy export replaces the function by the module, so the module calls the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> StudyResult:
        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
