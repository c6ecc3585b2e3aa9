"""deepatlas: the cornerstone deep-learning architectures, real and runnable on your own data.

The public API (imported lazily, so ``import deepatlas`` is cheap)::

    import deepatlas
    run = deepatlas.train("quickstart")                # a recipe name, a YAML path or a Config
    deepatlas.evaluate(run, split="test")              # metrics + confusion matrix
    model = deepatlas.create_model("resnet50")         # any registered model
    data = deepatlas.load_dataset("fashion-mnist")
    predictor = deepatlas.load(run.id)                 # the trained model + the run's preprocessing
    predictor.predict(raw_images)                      # class names, straight from raw pixels or files
    deepatlas.export(run.id, "my-model")               # a self-contained folder deepatlas.load reads
    deepatlas.ensemble([run1.id, run2.id]).evaluate()  # a deep ensemble: averaged probabilities, NLL, ECE
    deepatlas.tune("mlp-fashion-mnist", trials=20)     # a recipe's `search:` space, an Optuna study
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "api",
    "resume": "api",
    "evaluate": "api",
    "sample": "api",
    "sample_images": "api",
    "load": "predict",
    "export": "predict",
    "ensemble": "ensemble",
    "Ensemble": "ensemble",
    "Predictor": "predict",
    "open_run": "api",
    "list_runs": "api",
    "compare_runs": "api",
    "tune": "tune",
    "list_studies": "tune",
    "study_report": "tune",
    "create_model": "registry",
    "register_model": "registry",
    "load_dataset": "data",
    "load_recipe": "config",
    "list_recipes": "config",
    "Config": "config",
    "Trainer": "engine",
    "Callback": "engine",
    "Task": "tasks",
    "Run": "tracking",
    "RunStore": "tracking",
    "DeepAtlasError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepatlas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
