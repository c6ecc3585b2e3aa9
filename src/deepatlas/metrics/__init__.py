"""Metrics as pure functions on tensors: summable statistics, then values."""

from .classification import classification_metrics, classification_stats

__all__ = ["classification_metrics", "classification_stats"]
