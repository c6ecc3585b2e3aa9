"""Metrics as pure functions on tensors: summable statistics, then values."""

from .classification import classification_metrics, classification_stats
from .generative import class_coverage, feature_statistics, frechet_distance, inception_score
from .regression import regression_metrics, regression_stats

__all__ = [
    "class_coverage", "classification_metrics", "classification_stats", "feature_statistics", "frechet_distance",
    "inception_score", "regression_metrics", "regression_stats",
]
