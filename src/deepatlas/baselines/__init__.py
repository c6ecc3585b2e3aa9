"""Classical baselines that ``deepatlas crossval`` fits on the same folds as a recipe.

Each module registers its baselines with :func:`deepatlas.crossval.register_baseline`;
importing this package registers them all (the libraries they use are imported only when a
baseline is fitted).
"""

from . import boosting, coxph

__all__ = ["boosting", "coxph"]
