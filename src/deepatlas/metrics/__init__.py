"""Metrics as pure functions on tensors: summable statistics, then values."""

from .classification import classification_metrics, classification_stats
from .forecast import forecast_pinball, forecast_scores, mase, smape
from .generative import class_coverage, feature_statistics, frechet_distance, inception_score
from .intervals import (
    conformal_coverage_band,
    coverage,
    coverage_band,
    crps_from_quantiles,
    interval_score,
    mean_pinball,
    mean_width,
    pinball_loss,
)
from .regression import regression_metrics, regression_stats
from .survival import brier_score, harrell_c, integrated_brier_score, kaplan_meier, uno_c

__all__ = [
    "brier_score", "class_coverage", "classification_metrics", "classification_stats", "conformal_coverage_band", "coverage",
    "coverage_band", "crps_from_quantiles", "feature_statistics", "forecast_pinball", "forecast_scores", "frechet_distance", "harrell_c", "inception_score",
    "integrated_brier_score", "interval_score", "kaplan_meier", "mase", "mean_pinball", "mean_width", "pinball_loss",
    "regression_metrics", "regression_stats", "smape", "uno_c",
]
