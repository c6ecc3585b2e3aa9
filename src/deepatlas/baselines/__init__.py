"""Classical baselines that ``deepatlas crossval`` fits on the same folds as a recipe.

Each module registers its baselines with :func:`~deepatlas.baselines.registry.register_baseline`;
importing this package registers them all (the libraries they use are imported only when a
baseline is fitted).
"""

from __future__ import annotations

from ..errors import ConfigError, one_of, suggest
from . import boosting, coxph, glm
from .registry import BASELINES, Baseline, register_baseline


def get_baseline(name: str) -> Baseline:
    """The baseline called ``name``; an unknown name is a one-line error with a suggestion."""
    if name not in BASELINES:
        raise ConfigError(f"--baseline: unknown baseline {name!r} (known: {one_of(BASELINES)})." + suggest(name, BASELINES))
    return BASELINES[name]


__all__ = ["BASELINES", "Baseline", "boosting", "coxph", "get_baseline", "glm", "register_baseline"]
