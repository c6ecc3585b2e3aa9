"""One exception hierarchy for everything a user can get wrong.

The CLI turns any :class:`DeepAtlasError` into one clear line (what, where,
how to fix) and exit code 2, never a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DeepAtlasError(Exception):
    """Base class of all errors deepatlas raises on purpose."""


class ConfigError(DeepAtlasError, ValueError):
    """A recipe key, value or type is wrong."""


class DataError(DeepAtlasError):
    """A dataset is missing, corrupt or not in the expected format."""


class CheckpointError(DeepAtlasError):
    """A checkpoint is missing, corrupt or does not match the run."""


class RunError(DeepAtlasError):
    """A run does not exist or cannot do what was asked (e.g. resume)."""


class CapabilityError(RunError):
    """A run's task cannot do what was asked (sample from a classifier, predict with a GAN)."""


class TrainingError(DeepAtlasError):
    """Training cannot go on (e.g. the loss became NaN)."""


def suggest(word: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or ``""``."""
    candidates = [str(c) for c in candidates]
    close = difflib.get_close_matches(str(word), candidates, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[w] for w in difflib.get_close_matches(str(word).lower(), lowered, n=1)]
    return f" Did you mean '{close[0]}'?" if close else ""


def one_of(candidates: Iterable[str], limit: int = 12) -> str:
    """Format allowed values for a message: ``a, b, c`` (shortened if long)."""
    items = sorted(str(c) for c in candidates)
    if len(items) > limit:
        return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"
    return ", ".join(items)
