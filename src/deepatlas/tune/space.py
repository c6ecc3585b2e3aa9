"""The ``search:`` section of a recipe: objectives and a search space, and a trial as overrides.

::

    search:
      metric: val/accuracy          # one objective (default: the monitored metric, train.monitor)
      direction: max                # max or min (default: the monitor's mode)
      objectives: [val/accuracy, params]   # or several: metrics and the costs params, flops, latency_ms
      space:
        optim.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
        model.width: {type: int, low: 64, high: 1024, step: 64}
        model.name: {type: categorical, choices: [mlp, lenet5]}
        model.dropout: {type: float, low: 0.0, high: 0.5, when: {model.name: mlp}}

A trial becomes dotted overrides (``["optim.lr=0.0031", "model.name=mlp"]``), applied by the normal
recipe override mechanism, so a key the recipe does not have fails as it would on the command line.
A parameter with ``when`` is sampled only when the named earlier parameters took one of the given
values (conditional search spaces, as in the define-by-run style of Akiba et al., 2019, "Optuna").
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from .. import schema
from ..errors import ConfigError, one_of, suggest

if TYPE_CHECKING:
    from ..config import Config

TYPES = ("float", "int", "categorical")
COSTS = ("params", "flops", "latency_ms")  # measures of the trained model; lower is better
SECTIONS = ("data", "model", "task", "optim", "schedule", "train")
_SEARCH_KEYS = ("metric", "direction", "objectives", "directions", "space")
_PARAM_KEYS = {
    "float": ("type", "low", "high", "log", "step", "when"),
    "int": ("type", "low", "high", "log", "step", "when"),
    "categorical": ("type", "choices", "when"),
}
_DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}
_DOTTED = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+")


@dataclass(frozen=True)
class Param:
    """One searched key: its distribution and the condition under which it exists."""

    name: str  # the dotted recipe key, also the Optuna parameter name
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (earlier parameter, values that enable this one)

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the parameters sampled so far enable this one."""
        return all(name in values and values[name] in allowed for name, allowed in self.when)

    def suggest(self, trial: Any) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def probe_values(self) -> list[Any]:
        """Values that show whether the recipe accepts this key: every choice, or both bounds."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def grid_values(self) -> list[Any]:
        """The values a grid search visits."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ConfigError(
                f"search.space.{self.name}: the grid sampler needs a step for a float parameter "
                "(or make it categorical)."
            )
        n = round((self.high - self.low) / self.step)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def describe(self) -> str:
        if self.type == "categorical":
            text = "{" + ", ".join(map(str, self.choices)) + "}"
        else:
            text = f"[{self.low}, {self.high}]" + (" log" if self.log else "") + (f" step {self.step}" if self.step else "")
        if self.when:
            text += " when " + ", ".join(f"{k} in {list(v)}" for k, v in self.when)
        return text


@dataclass(frozen=True)
class Objective:
    """A quantity to optimise: a validation metric (``val/accuracy``) or a cost (``params``)."""

    name: str
    direction: str  # maximize or minimize

    @property
    def is_cost(self) -> bool:
        return self.name in COSTS


@dataclass(frozen=True)
class SearchSpec:
    """A parsed ``search:`` section."""

    objectives: tuple[Objective, ...]
    space: tuple[Param, ...] = field(default=())

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-able description (stored with the study to recognise it on resume)."""
        return {
            "objectives": [{"name": o.name, "direction": o.direction} for o in self.objectives],
            "space": {p.name: p.describe() for p in self.space},
        }


# --------------------------------------------------------------------------- parsing


def resolve_monitor(config: Config) -> tuple[str, str]:
    """The monitored validation metric and its mode, as the trainer resolves them (``Trainer._monitor``)."""
    from ..registry import TASKS

    task = TASKS.get(config.task.name, "task.name").factory
    default_name, default_mode = task.monitor
    name = config.train.monitor or default_name
    bare = name.split("/", 1)[1] if name.startswith("val/") else name
    mode = config.train.mode
    if mode == "auto":
        mode = default_mode if bare == default_name else task.direction(bare, config.task.options)
    return f"val/{bare}", mode


def parse_search(
    raw: Mapping[str, Any] | None, monitor: tuple[str, str] = ("val/loss", "min"),
    directions: Mapping[str, str] | None = None,
) -> SearchSpec:
    """Validate a ``search:`` mapping; ``monitor`` is the recipe's monitored metric and mode, ``directions``
    the task's declared metric directions (``Task.metric_directions``), the default of an objective's."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"search: expected a mapping ({', '.join(_SEARCH_KEYS)}), got {raw!r}.")
    schema.check_keys("search", raw, _SEARCH_KEYS)
    objectives = _parse_objectives(raw, monitor, directions or {})
    space = _parse_space(raw.get("space"))
    return SearchSpec(objectives, space)


def _metric_name(value: Any, path: str) -> str:
    name = schema.coerce(value, str, path).strip()
    if not name:
        raise ConfigError(f"{path}: expected a metric name such as val/accuracy or one of {', '.join(COSTS)}.")
    if name in COSTS or name.startswith("val/"):
        return name
    close = difflib.get_close_matches(name, COSTS, n=1, cutoff=0.8)  # strict: "loss" is not "flops"
    if close:
        raise ConfigError(
            f"{path}: {name!r} is not a cost (allowed: {', '.join(COSTS)}); write val/{name} for a validation "
            f"metric. Did you mean '{close[0]}'?"
        )
    if "/" in name:
        raise ConfigError(
            f"{path}: {name!r} is not a validation metric or cost (use val/<metric> or one of {', '.join(COSTS)})."
            + suggest(name, COSTS)
        )
    return f"val/{name}"


def _direction(value: Any, path: str) -> str:
    text = schema.coerce(value, str, path).lower()
    if text not in _DIRECTIONS:
        raise ConfigError(f"{path}: {value!r} is not allowed (allowed: max, min)." + suggest(text, ("max", "min")))
    return _DIRECTIONS[text]


def _default_direction(name: str, monitor: tuple[str, str], directions: Mapping[str, str], path: str) -> str:
    if name in COSTS:
        return "minimize"
    if name == monitor[0]:
        return _DIRECTIONS[monitor[1]]
    bare = name.split("/", 1)[1]
    if bare not in directions:
        raise ConfigError(
            f"{path}: {name!r} is not a metric this recipe's task reports"
            + (f" (its metrics: {', '.join(sorted(directions))})" if directions else "")
            + "; name one of them, or give its direction (max or min)." + suggest(bare, directions)
        )
    return _DIRECTIONS[directions[bare]]


def _parse_objectives(
    raw: Mapping[str, Any], monitor: tuple[str, str], known: Mapping[str, str]
) -> tuple[Objective, ...]:
    if "objectives" in raw:
        for key in ("metric", "direction"):
            if key in raw:
                raise ConfigError(
                    f"search.{key}: give either metric/direction (one objective) or objectives/directions "
                    "(several), not both."
                )
        names = raw["objectives"]
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, Sequence) or not names:
            raise ConfigError(f"search.objectives: expected a list of metric names or costs, got {names!r}.")
        parsed = [_metric_name(n, f"search.objectives[{i}]") for i, n in enumerate(names)]
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"search.objectives: {parsed} names an objective twice.")
        directions = raw.get("directions")
        if directions is None:
            dirs = [_default_direction(n, monitor, known, "search.objectives") for n in parsed]
        else:
            if isinstance(directions, str) or not isinstance(directions, Sequence) or len(directions) != len(parsed):
                raise ConfigError(
                    f"search.directions: expected a list of {len(parsed)} directions (max or min), one per objective, "
                    f"got {directions!r}."
                )
            dirs = [_direction(d, f"search.directions[{i}]") for i, d in enumerate(directions)]
        return tuple(Objective(n, d) for n, d in zip(parsed, dirs, strict=True))
    if "directions" in raw:
        raise ConfigError("search.directions: goes with search.objectives; for one metric use search.direction.")
    name = _metric_name(raw["metric"], "search.metric") if raw.get("metric") is not None else monitor[0]
    direction = _direction(raw["direction"], "search.direction") if raw.get("direction") is not None else (
        _default_direction(name, monitor, known, "search.metric")
    )
    return (Objective(name, direction),)


def _parse_space(raw: Any) -> tuple[Param, ...]:
    if raw is None:
        raise ConfigError(
            "search.space: required (the keys to search, e.g. optim.lr: {type: float, low: 1.0e-4, high: 0.1, log: true})."
        )
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"search.space: expected a mapping of dotted recipe keys to distributions, got {raw!r}.")
    params: list[Param] = []
    for name, spec in raw.items():
        params.append(_parse_param(str(name), spec, params))
    return tuple(params)


def _parse_param(name: str, spec: Any, earlier: Sequence[Param]) -> Param:
    path = f"search.space.{name}"
    if not _DOTTED.fullmatch(name):
        raise ConfigError(f"{path}: {name!r} is not a dotted recipe key like optim.lr.")
    section = name.split(".", 1)[0]
    if section not in SECTIONS:
        raise ConfigError(
            f"{path}: {section!r} is not a recipe section that can be searched (allowed: {one_of(SECTIONS)})."
            + suggest(section, SECTIONS)
        )
    if isinstance(spec, list):  # shorthand: a list of values is a categorical parameter
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{path}: expected a mapping such as {{type: float, low: 0.0, high: 1.0}}, got {spec!r}.")
    kind = spec.get("type")
    if kind is None:
        raise ConfigError(f"{path}.type: required (allowed: {one_of(TYPES)}).")
    if kind not in TYPES:
        raise ConfigError(f"{path}.type: {kind!r} is not allowed (allowed: {one_of(TYPES)})." + suggest(str(kind), TYPES))
    schema.check_keys(path, spec, _PARAM_KEYS[kind])
    when = _parse_when(path, spec.get("when"), earlier)
    if kind == "categorical":
        return Param(name, kind, choices=_parse_choices(path, spec.get("choices")), when=when)
    return _parse_numeric(name, path, kind, spec, when)


def _parse_choices(path: str, choices: Any) -> tuple[Any, ...]:
    if not isinstance(choices, (list, tuple)) or not choices:
        raise ConfigError(f"{path}.choices: expected a non-empty list of values, got {choices!r}.")
    for i, choice in enumerate(choices):
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise ConfigError(f"{path}.choices[{i}]: {choice!r} is not a number, string, boolean or null.")
    if len({repr(c) for c in choices}) != len(choices):
        raise ConfigError(f"{path}.choices: {list(choices)} lists a value twice.")
    return tuple(choices)


def _parse_numeric(name: str, path: str, kind: str, spec: Mapping[str, Any], when: Any) -> Param:
    number = int if kind == "int" else float
    for key in ("low", "high"):
        if spec.get(key) is None:
            raise ConfigError(f"{path}.{key}: required for a {kind} parameter.")
    low = schema.coerce(spec["low"], number, f"{path}.low")
    high = schema.coerce(spec["high"], number, f"{path}.high")
    if low > high:
        raise ConfigError(f"{path}: low ({low}) is greater than high ({high}); swap them.")
    log = schema.coerce(spec.get("log", False), bool, f"{path}.log")
    step = None if spec.get("step") is None else schema.coerce(spec["step"], number, f"{path}.step")
    if log and low <= 0:
        raise ConfigError(f"{path}.low: must be > 0 on a log scale, got {low}.")
    if step is not None:
        if log:
            raise ConfigError(f"{path}.step: cannot be combined with log: true (Optuna samples one or the other).")
        if step <= 0:
            raise ConfigError(f"{path}.step: must be > 0, got {step}.")
        spans = (high - low) / step
        if not math.isclose(spans, round(spans), abs_tol=1e-9):
            fixed = low + math.floor(spans) * step
            raise ConfigError(f"{path}.high: high - low must be a multiple of step {step} (e.g. high: {fixed}).")
    return Param(name, kind, low=low, high=high, step=step, log=log, when=when)


def _parse_when(path: str, raw: Any, earlier: Sequence[Param]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{path}.when: expected a mapping of earlier parameters to values, e.g. {{model.name: mlp}}.")
    known = {p.name: p for p in earlier}
    out = []
    for key, values in raw.items():
        key = str(key)
        if key not in known:
            raise ConfigError(
                f"{path}.when: {key!r} is not a parameter defined above this one in search.space "
                f"(defined above: {one_of(known) or 'none'})." + suggest(key, known)
            )
        ref = known[key]
        if ref.type == "float":
            raise ConfigError(f"{path}.when: {key} is a float parameter; conditions need a categorical or int one.")
        allowed = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        for value in allowed:
            ok = value in ref.choices if ref.type == "categorical" else (
                isinstance(value, int) and ref.low <= value <= ref.high
            )
            if not ok:
                choices = one_of(map(str, ref.choices)) if ref.type == "categorical" else f"integers {ref.low}..{ref.high}"
                raise ConfigError(
                    f"{path}.when: {key} never takes {value!r} (its values: {choices})." + suggest(str(value), map(str, ref.choices))
                )
        out.append((key, allowed))
    return tuple(out)


# --------------------------------------------------------------------------- trials


def sample(space: Sequence[Param], trial: Any) -> dict[str, Any]:
    """Ask ``trial`` for each active parameter, in order: ``{"optim.lr": 0.003, ...}``."""
    values: dict[str, Any] = {}
    for param in space:
        if param.active(values):
            values[param.name] = param.suggest(trial)
    return values


def format_value(value: Any) -> str:
    """A value as YAML that reads back as the same value (``1e-05`` -> ``1.0e-05``, ``"true"`` quoted)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def to_overrides(values: Mapping[str, Any]) -> list[str]:
    """``{"optim.lr": 0.01}`` -> ``["optim.lr=0.01"]``, the form of command-line overrides."""
    return [f"{key}={format_value(value)}" for key, value in values.items()]


def trial_overrides(space: Sequence[Param], trial: Any) -> list[str]:
    """The dotted overrides a trial stands for."""
    return to_overrides(sample(space, trial))


def probes(space: Sequence[Param]) -> list[dict[str, Any]]:
    """Override sets that together try every searched key with its extreme values (and every choice),
    each with the values that enable it: loading the recipe with them checks the space up front."""
    by_name = {p.name: p for p in space}

    def enabling(param: Param) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, allowed in param.when:
            values.update(enabling(by_name[name]))
            values[name] = allowed[0]
        return values

    out = []
    for param in space:
        base = enabling(param)
        out.extend({**base, param.name: value} for value in param.probe_values())
    return out
