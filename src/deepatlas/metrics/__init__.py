"""Metrics as pure functions on tensors: summable statistics, then values."""

from .classification import classification_metrics, classification_stats
from .generative import class_coverage, feature_statistics, frechet_distance, inception_score
from .survival import brier_score, harrell_c, integrated_brier_score, kaplan_meier, uno_c

__all__ = [
    "brier_score", "class_coverage", "classification_metrics", "classification_stats", "feature_statistics",
    "frechet_distance", "harrell_c", "inception_score", "integrated_brier_score", "kaplan_meier", "uno_c",
]
