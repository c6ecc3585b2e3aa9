"""Figures: training curves, confusion matrices, reliability diagrams."""

from .plots import plot_confusion, plot_curves, plot_reliability

__all__ = ["plot_confusion", "plot_curves", "plot_reliability"]
