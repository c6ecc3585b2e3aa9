"""Objectives: how a batch becomes losses and metrics. Importing registers them."""

from . import classification, language, seq2seq
from .base import Evaluation, StepOutput, Task, accumulate

__all__ = ["Evaluation", "StepOutput", "Task", "accumulate", "classification", "language", "seq2seq"]
