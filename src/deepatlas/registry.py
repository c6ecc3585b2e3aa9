"""Name -> factory registries for models, datasets and tasks.

Presets are data: ``register_model("resnet50", ResNet, ResNetConfig(...))``.
``create_model(name, **overrides)`` builds one, with overrides applied through
:func:`deepatlas.schema.replace` so that an unknown key fails at once.
Registries fill themselves on first use by importing their modules, so that
``import deepatlas`` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import schema
from .errors import ConfigError, one_of, suggest


@dataclass(frozen=True)
class Entry:
    """One registered name: what builds it, its preset config and a line of doc."""

    name: str
    factory: Callable[..., Any]
    config: Any = None
    family: str = ""
    doc: str = ""


class Registry:
    """A name -> :class:`Entry` table that imports its modules lazily."""

    def __init__(self, kind: str, modules: tuple[str, ...]) -> None:
        self.kind = kind
        self._modules = modules
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        config: Any = None,
        *,
        family: str = "",
        doc: str = "",
    ) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        if name != name.lower() or "_" in name or " " in name:
            raise ValueError(f"{self.kind} names are lowercase with dashes: {name!r}")
        self._entries[name] = Entry(name, factory, config, family, doc)

    def get(self, name: str, path: str | None = None) -> Entry:
        self._load()
        if name not in self._entries:
            where = path or self.kind
            raise ConfigError(
                f"{where}: unknown {self.kind} {name!r} (known: {one_of(self._entries, limit=20)})."
                + suggest(name, self._entries)
            )
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._load()
        return iter(list(self._entries.values()))


MODELS = Registry("model", ("deepatlas.models",))
DATASETS = Registry("dataset", ("deepatlas.data",))
TASKS = Registry("task", ("deepatlas.tasks",))


def register_model(
    name: str, cls: Callable[..., Any], config: Any, *, family: str, doc: str = ""
) -> None:
    """Register a model preset: ``cls(config)`` builds it."""
    MODELS.register(name, cls, config, family=family, doc=doc)


def model_config(name: str, path: str = "model", **overrides: Any) -> Any:
    """The preset config of model ``name`` with ``overrides`` applied and checked."""
    entry = MODELS.get(name, f"{path}.name")
    return schema.replace(entry.config, overrides, path)


def create_model(name: str, **overrides: Any) -> Any:
    """Build registered model ``name``; keyword overrides replace preset fields.

    >>> model = create_model("resnet18", num_classes=10)  # doctest: +SKIP
    """
    entry = MODELS.get(name, "model.name")
    return entry.factory(model_config(name, **overrides))
