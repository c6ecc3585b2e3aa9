"""Objectives: how a batch becomes losses and metrics. Importing registers them."""

from . import (
    classification,
    clip,
    diffusion,
    distillation,
    forecast,
    gan,
    graph,
    language,
    quantile,
    regression,
    segmentation,
    seq2seq,
    ssl,
    survival,
    vae,
)
from .base import Evaluation, StepOutput, Task, accumulate

__all__ = [
    "Evaluation", "StepOutput", "Task", "accumulate", "classification", "clip", "diffusion", "distillation", "forecast", "gan", "graph", "language",
    "quantile", "regression", "segmentation", "seq2seq", "ssl", "survival", "vae",
]
