"""The stored catalogue (names, docs, option keys, parameter counts) matches the live registries."""

from __future__ import annotations

import dataclasses
import json

import pytest

from deepatlas import catalogue
from deepatlas.errors import ConfigError
from deepatlas.registry import CATALOGUE_PATH, MODELS, Registry

STALE = "src/deepatlas/catalogue.json is stale: run `python -m deepatlas.catalogue` and commit the file"


def test_catalogue_is_complete_and_current() -> None:
    """Every registered model is rebuilt (on the meta device) and counted; any difference fails."""
    stored = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    built = catalogue.build()
    for kind in built:
        missing = sorted(set(built[kind]) - set(stored.get(kind, {})))
        extra = sorted(set(stored.get(kind, {})) - set(built[kind]))
        assert not missing and not extra, f"{STALE} ({kind}s missing: {missing}, no longer registered: {extra})"
        changed = [name for name in built[kind] if built[kind][name] != stored[kind][name]]
        assert not changed, f"{STALE} ({kind}s changed: {changed})"
    assert catalogue.dumps(built) == CATALOGUE_PATH.read_text(encoding="utf-8"), STALE  # same order and layout
    assert built["model"]["resnet50"]["params"] == 25_557_032


def test_listings_without_loading_match_the_loaded_registry() -> None:
    fresh = Registry("model", ("deepatlas.models",))  # not loaded: reads the catalogue
    listed = fresh.listings()
    assert not fresh._loaded
    assert list(listed) == MODELS.names()
    assert listed["mlp"].keys == tuple(MODELS.listings()["mlp"].keys) and listed["mlp"].params == 269_322


def test_a_model_registered_at_run_time_is_listed_with_its_keys() -> None:
    @dataclasses.dataclass(frozen=True)
    class ToyConfig:
        width: int = 8

    models = Registry("model", ())  # your own registry entries: not in the catalogue
    models.register("toy", object, ToyConfig(), family="toy", doc="a toy")
    assert models.listing("toy").keys == ("width",) and models.listing("toy").params is None
    assert "resnet18" in models.listings()  # the built-ins still come from the catalogue
    with pytest.raises(ConfigError, match="Did you mean 'toy'"):
        models.listing("tyo", "model.name")
