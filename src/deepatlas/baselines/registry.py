"""The table of baselines ``deepatlas crossval`` can fit: name -> function, the data kinds it serves, a doc."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Baseline:
    name: str
    fit_and_score: Callable[[Any, Any], dict[str, float]]  # (fold's TabularData, recipe's task) -> test metrics
    kinds: tuple[str, ...]  # the data kinds it serves: labelled, tabular, survival
    doc: str = ""


BASELINES: dict[str, Baseline] = {}


def register_baseline(name: str, fn: Callable[[Any, Any], dict[str, float]], kinds: Sequence[str], doc: str = "") -> None:
    if name in BASELINES:
        raise ValueError(f"baseline {name!r} is registered twice")
    BASELINES[name] = Baseline(name, fn, tuple(kinds), doc)
