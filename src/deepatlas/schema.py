"""Typed dataclass schemas: one-line docs per key, coercion and validation.

Every configurable thing in deepatlas (recipe sections, model configs, task
configs, dataset options) is a dataclass whose fields are declared with
:func:`option`. :func:`parse` turns a plain mapping (from YAML or from
``key=value`` overrides) into an instance, rejecting unknown keys, wrong types
and bad values with a one-line :class:`~deepatlas.errors.ConfigError` that
names the key path, the value, what is allowed and a "did you mean".
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from .errors import ConfigError, one_of, suggest

_NoneType = type(None)

#: integers are stored, seeded and sized as 64-bit: a larger value is a typo, not a setting
INT_LIMIT = 2**63 - 1


def option(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    resumable: bool = False,
) -> Any:
    """Declare a config field with a default, a one-line doc and bounds.

    ``low``/``high`` are inclusive bounds for numbers (and for each element of
    a tuple of numbers); ``choices`` restricts a string field. ``resumable``: the
    key may change when a run is resumed (how long and where it trains, not what).
    """
    meta = {"doc": doc, "low": low, "high": high, "choices": choices, "resumable": resumable}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) default for config fields")
    return dataclasses.field(default=default, metadata=meta)


def field_docs(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(name, type description, default, doc)`` for each field of ``cls``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        rows.append((f.name, describe(hints[f.name]), default, f.metadata.get("doc", "")))
    return rows


def resumable_keys(cls: type, prefix: str) -> list[str]:
    """Dotted names of the fields of ``cls`` declared ``resumable``."""
    return [f"{prefix}.{f.name}" for f in dataclasses.fields(cls) if f.metadata.get("resumable")]


def describe(tp: Any) -> str:
    """A short human description of a type hint, used in error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any value"
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in args if a is not _NoneType]
        text = " or ".join(parts)
        return f"{text} or null" if _NoneType in args else text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(describe(args[0]))}"
        return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article) :] + "s"
    return text


def _fail(path: str, value: Any, expected: str, hint: str = "") -> ConfigError:
    return ConfigError(f"{path}: expected {expected}, got {value!r}." + hint)


def coerce(value: Any, tp: Any, path: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise a ConfigError naming ``path``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if _NoneType in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        for arg in args:
            if arg is _NoneType:
                continue
            try:
                return coerce(value, arg, path)
            except ConfigError:
                continue
        raise _fail(path, value, describe(tp))
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"{path}: {value!r} is not allowed (allowed: {', '.join(map(str, args))})."
            + suggest(str(value), map(str, args))
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(path, value, "true or false")
    if tp is int:
        out_int: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            out_int = value
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):  # not a number: the error below names the key
                out_int = int(value.replace("_", ""))
        if out_int is None:
            raise _fail(path, value, "an integer")
        if abs(out_int) > INT_LIMIT:
            raise ConfigError(
                f"{path}: {value} is out of range (integers must lie within +-{INT_LIMIT:.2e}, i.e. 64 bits); "
                "use a smaller value."
            )
        return out_int
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                out = float(value)
            except OverflowError:  # an integer beyond float range
                out = math.inf
        elif isinstance(value, str):
            # PyYAML reads "1e-3" (no dot) as a string: accept it as the number it is.
            try:
                out = float(value)
            except ValueError:
                raise _fail(path, value, "a number") from None
        else:
            raise _fail(path, value, "a number")
        if not math.isfinite(out):  # nan or inf: no option means "no limit" by an infinite number
            raise _fail(path, value, "a finite number (not NaN or infinity)", " Use a finite value.")
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(path, value, "a string")
    if origin is tuple:
        if isinstance(value, (int, float, str)) and len(args) == 2 and args[1] is Ellipsis:
            value = [value]  # a single value where a list is expected
        if not isinstance(value, (list, tuple)):
            raise _fail(path, value, describe(tp))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _fail(path, value, describe(tp))
        return tuple(coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _fail(path, value, "a mapping")
        kt, vt = args if args else (str, Any)
        return {coerce(k, kt, path): coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _fail(path, value, "a mapping")
        return parse(tp, value, path)
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _check_bounds(path: str, value: Any, meta: Mapping[str, Any]) -> None:
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if low is not None and v < low:
            raise ConfigError(f"{path}: {value!r} is too small (must be >= {low}).")
        if high is not None and v > high:
            raise ConfigError(f"{path}: {value!r} is too large (must be <= {high}).")
    if choices is not None and value is not None and value not in choices:
        raise ConfigError(
            f"{path}: {value!r} is not allowed (allowed: {one_of(choices)})."
            + suggest(str(value), choices)
        )


def check_keys(path: str, keys: typing.Iterable[str], allowed: typing.Iterable[str]) -> None:
    """Raise a ConfigError for the first key of ``keys`` not in ``allowed``."""
    allowed = list(allowed)
    for key in keys:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(
                f"{where}: unknown key (allowed here: {one_of(allowed, limit=40)})."
                + suggest(str(key), allowed)
            )


def parse(cls: type, raw: Mapping[str, Any] | None, path: str) -> Any:
    """Build a ``cls`` instance from ``raw``, validating every key and value."""
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(path, raw, fields)
    kwargs = {}
    for name, value in raw.items():
        key_path = f"{path}.{name}" if path else name
        value = coerce(value, hints[name], key_path)
        _check_bounds(key_path, value, fields[name].metadata)
        kwargs[name] = value
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{path}.{missing[0]}: required key is missing.")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(path)
    return obj


def replace(obj: Any, overrides: Mapping[str, Any], path: str) -> Any:
    """``dataclasses.replace`` with the same checks as :func:`parse`."""
    if not overrides:
        return obj
    current = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
    check_keys(path, overrides, current)
    current.update(overrides)
    return parse(type(obj), current, path)


def to_dict(obj: Any) -> Any:
    """A plain, YAML-friendly view of a dataclass instance (tuples as lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
