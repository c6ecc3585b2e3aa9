"""Figures: training curves, confusion matrices, reliability diagrams, intervals and survival curves."""

from .plots import plot_confusion, plot_curves, plot_reliability
from .statistics import plot_intervals, plot_survival

__all__ = ["plot_confusion", "plot_curves", "plot_intervals", "plot_reliability", "plot_survival"]
