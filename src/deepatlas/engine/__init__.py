"""The training engine: one generic loop, used by every family."""

from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint
from .device import resolve_device
from .ema import EMA
from .optim import build_optimizer
from .progress import ProgressBar
from .schedule import LRSchedule
from .trainer import FitResult, Trainer, TrainState

__all__ = [
    "EMA", "Callback", "FitResult", "LRSchedule", "ProgressBar", "TrainState", "Trainer",
    "build_optimizer", "load_checkpoint", "resolve_device", "save_checkpoint",
]
