"""Build ``catalogue.json``: the registries as data, so that start-up does not import torch.

Every registered model, dataset and task with its family, one-line doc and
option keys, the kinds of data a dataset serves and a task takes, and for models the parameter count at the preset size (counted
on the ``meta`` device: no weights are allocated). :mod:`deepatlas.registry`
reads the file; recipe validation and ``deepatlas models`` use it instead of
importing the modules. Regenerate it after adding or changing a preset::

    python -m deepatlas.catalogue

``tests/test_catalogue.py`` rebuilds it and fails if the stored one differs.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from .registry import CATALOGUE_PATH, DATASETS, MODELS, TASKS, Registry, option_keys

log = logging.getLogger(__name__)


def _entries(registry: Registry, count: bool) -> dict[str, dict[str, Any]]:
    import torch

    from .models import count_parameters

    out: dict[str, dict[str, Any]] = {}
    for entry in registry:
        info: dict[str, Any] = {"family": entry.family, "doc": entry.doc, "keys": list(option_keys(entry.config))}
        if entry.kinds():
            info["data_kinds"] = list(entry.kinds())
        if count:
            with torch.device("meta"):
                info["params"] = count_parameters(entry.factory(entry.config))
        out[entry.name] = info
    return out  # registration order: how `deepatlas models` lists them


def build() -> dict[str, dict[str, dict[str, Any]]]:
    """The catalogue of the live registries (imports every model, dataset and task module)."""
    return {"model": _entries(MODELS, True), "dataset": _entries(DATASETS, False), "task": _entries(TASKS, False)}


def dumps(catalogue: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The stored text: one line per entry, so that a changed preset is a one-line diff."""
    kinds = []
    for kind, entries in catalogue.items():
        lines = ",\n".join(f"  {json.dumps(name)}: {json.dumps(info, ensure_ascii=False)}" for name, info in entries.items())
        kinds.append(f" {json.dumps(kind)}: {{\n{lines}\n }}")
    return "{\n" + ",\n".join(kinds) + "\n}\n"


def write(path: Path = CATALOGUE_PATH) -> Path:
    """Rebuild the catalogue and store it at ``path``."""
    path.write_text(dumps(build()), encoding="utf-8")
    return path


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    log.info("wrote %s", write())


if __name__ == "__main__":
    main()
