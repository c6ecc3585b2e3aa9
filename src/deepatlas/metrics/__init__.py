"""Metrics as pure functions on tensors: summable statistics, then values."""

from .classification import classification_metrics, classification_stats
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

__all__ = [
    "class_coverage",
    "classification_metrics",
    "classification_stats",
    "conformal_coverage_band",
    "coverage",
    "coverage_band",
    "crps_from_quantiles",
    "feature_statistics",
    "frechet_distance",
    "inception_score",
    "interval_score",
    "mean_pinball",
    "mean_width",
    "pinball_loss",
    "regression_metrics",
    "regression_stats",
]
