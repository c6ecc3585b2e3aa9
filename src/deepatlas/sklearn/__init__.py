"""deepatlas inside scikit-learn: estimators with ``fit``/``predict``/``score``, usable in ``Pipeline``,
``cross_val_score`` and ``GridSearchCV``.

Each estimator is a thin wrapper (GUIDE section 5): ``fit`` builds a recipe from the estimator's
parameters and calls :func:`deepatlas.train` on the rows given (a pandas DataFrame keeps its column
names and its categorical columns; an array becomes numeric columns ``x0, x1, ...``), and ``predict``
is the trained run's :class:`~deepatlas.predict.Predictor`. Every fit is an ordinary run in the run
store, so ``deepatlas runs``, ``runs compare`` and the report see it; ``track=False`` trains in a
temporary folder that is removed after the fit.

- :class:`TabularClassifier`: ``predict``, ``predict_proba``; score: accuracy.
- :class:`TabularRegressor`: a point regressor (the mean of a normal with learnt variance by default);
  ``predict``; score: R^2.
- :class:`DistributionalRegressor`: a chosen distribution's parameters (``distribution="poisson"``,
  ``"student-t"``, ...); ``predict`` (the mean), ``predict_distribution``, ``predict_quantiles``,
  ``predict_interval``.
- :class:`QuantileRegressor`: non-crossing quantiles with conformalized intervals (CQR);
  ``predict`` (the median), ``predict_quantiles``, ``predict_interval``.
- :class:`SurvivalRegressor`: DeepSurv (``method="deepsurv"``), logistic hazard or DeepHit, fitted to
  ``y`` = (duration, event) (a two-column array, or scikit-survival's structured array);
  ``predict`` (a risk score, higher = earlier event), ``predict_survival_function``; score: Harrell's C.
- :class:`DeepForecaster`: a window forecaster of one series, ``fit(y, X=None)`` on its whole history,
  ``predict(horizon)``, ``predict_interval`` (conformal on held-out windows), ``predict_quantiles``, ``update``.
"""

from .estimators import (
    DistributionalRegressor,
    QuantileRegressor,
    SurvivalRegressor,
    TabularClassifier,
    TabularRegressor,
)
from .forecaster import DeepForecaster

__all__ = ["DeepForecaster", "DistributionalRegressor", "QuantileRegressor", "SurvivalRegressor", "TabularClassifier", "TabularRegressor"]
