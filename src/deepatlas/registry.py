"""Name -> factory registries for models, datasets and tasks.

Presets are data: ``register_model("resnet50", ResNet, ResNetConfig(...))``.
``create_model(name, **overrides)`` builds one, with overrides applied through
:func:`deepatlas.schema.replace` so that an unknown key fails at once.
Registries fill themselves on first use by importing their modules, so that
``import deepatlas`` stays light.

What a recipe or the CLI needs before anything is built (the names, their
families, docs, option keys and parameter counts) is also kept as data in
``catalogue.json`` next to this file: :meth:`Registry.listing` and
:meth:`Registry.listings` read it instead of importing the model, dataset and
task modules, which import torch. Validating a recipe's names and keys and
``deepatlas models`` therefore start in a fraction of a second. The catalogue
is generated from the live registries by ``python -m deepatlas.catalogue``;
``tests/test_catalogue.py`` fails when it is stale.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
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
    data_kinds: tuple[str, ...] = ()  # a dataset: the kinds of data it serves (see Task.data_kind)

    def kinds(self) -> tuple[str, ...]:
        """A dataset's declared kinds; a task's ``data_kind`` (none for ``any``); a model: none."""
        if self.data_kinds:
            return self.data_kinds
        kind = getattr(self.factory, "data_kind", None)
        return (kind,) if isinstance(kind, str) and kind != "any" else ()


CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")


@dataclass(frozen=True)
class Listing:
    """What is known of a registered name without importing its module."""

    name: str
    family: str = ""
    doc: str = ""
    keys: tuple[str, ...] = ()  # the fields of its preset (options) dataclass
    params: int | None = None  # models: parameters at the preset size
    data_kinds: tuple[str, ...] = ()  # datasets: the kinds they serve; tasks: the kind they take (none: any)


@functools.cache
def _catalogue() -> dict[str, dict[str, dict[str, Any]]]:
    try:
        return json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def option_keys(config: Any) -> tuple[str, ...]:
    """The field names of a preset (options) dataclass; none for an entry without options."""
    return tuple(f.name for f in dataclasses.fields(config)) if config is not None else ()


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
        data_kinds: tuple[str, ...] = (),
    ) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        if name != name.lower() or "_" in name or " " in name:
            raise ValueError(f"{self.kind} names are lowercase with dashes: {name!r}")
        self._entries[name] = Entry(name, factory, config, family, doc, tuple(data_kinds))

    def get(self, name: str, path: str | None = None) -> Entry:
        self._load()
        if name not in self._entries:
            raise self._unknown(name, path, self._entries)
        return self._entries[name]

    def _unknown(self, name: str, path: str | None, known: Any) -> ConfigError:
        return ConfigError(
            f"{path or self.kind}: unknown {self.kind} {name!r} (known: {one_of(known, limit=20)})."
            + suggest(name, known)
        )

    def listings(self) -> dict[str, Listing]:
        """Every name with its family, doc, option keys and size, without importing the modules.

        The built-in names come from the catalogue, entries registered in this
        process (your own models, or all of them once loaded) from the table.
        Without a catalogue the modules are imported.
        """
        stored = _catalogue().get(self.kind)
        if stored is None:
            self._load()
            stored = {}
        found = {} if self._loaded else {
            name: Listing(
                name, info["family"], info["doc"], tuple(info["keys"]), info.get("params"), tuple(info.get("data_kinds", ())),
            )
            for name, info in stored.items()
        }
        for entry in self._entries.values():
            params = stored.get(entry.name, {}).get("params")
            found[entry.name] = Listing(
                entry.name, entry.family, entry.doc, option_keys(entry.config), params, entry.kinds(),
            )
        return found

    def listing(self, name: str, path: str | None = None) -> Listing:
        """The listing of ``name``; an unknown name fails as :meth:`get` does."""
        found = self.listings()
        if name not in found:
            raise self._unknown(name, path, found)
        return found[name]

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
