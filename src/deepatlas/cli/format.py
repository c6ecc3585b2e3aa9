"""How the CLI writes: the consoles, number/duration/energy formatting and tables.

Every command module formats through these helpers, so that a number reads the
same in ``runs``, ``studies`` and ``bench``. Stored values stay exact; only
what is printed is rounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False)
if not out.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out = Console(highlight=False, width=240)
err = Console(stderr=True, highlight=False)


def number(value: Any, digits: int = 4) -> str:
    """A metric or count: ``digits`` decimals, scientific when huge, thousands separators for big ints."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value)


def significant(value: Any, digits: int = 4) -> str:
    """A sampled hyperparameter: floats to ``digits`` significant digits (``0.001252``), the rest as is."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{digits}g}"
    return str(value)


def assignments(params: Mapping[str, Any]) -> str:
    """``optim.lr=0.001252 model.depth=3``: parameters as a user would type them, rounded for reading."""
    return " ".join(f"{k}={significant(v)}" for k, v in params.items())


def values(items: Sequence[Any] | None) -> str:
    """Objective values of a trial, comma-separated (``-`` for none)."""
    return ", ".join(number(v) for v in items) if items else "-"


def duration(seconds: Any) -> str:
    """``1h02m03s``, ``4m05s``, ``6s``; ``-`` when unknown."""
    if not isinstance(seconds, (int, float)):
        return "-"
    # The progress bar's format; the engine imports torch, loaded by then by the command that has times to show.
    from ..engine.progress import format_duration

    return format_duration(seconds)


def seconds(value: float) -> str:
    """Short times with a decimal (``12.3s``), longer ones as :func:`duration`."""
    return f"{value:.1f}s" if value < 60 else duration(value)


def energy(joules: float, co2e_g: float) -> str:
    """Energy in Wh (kWh when large) and CO2e in g (the method and figures are in each run's summary)."""
    wh = joules / 3600
    amount = f"{wh / 1000:.2f} kWh" if wh >= 1000 else f"{wh:.2f} Wh"
    return f"{amount} ~ {co2e_g:.1f} g CO2e"


def energy_text(record: Mapping[str, Any] | None) -> str:
    """A run summary's energy record with its method and grid intensity."""
    if not record:
        return "-"
    grid = (record.get("assumptions") or {}).get("grid_g_co2e_per_kwh", 0)
    return f"{energy(record['joules'], record['co2e_g'])} ({record['method']}, {grid:g} g/kWh)"


def git_text(git: Mapping[str, Any] | None) -> str:
    """A run's recorded checkout: short commit, branch when recorded, dirty or clean."""
    if not git:
        return "- (not a git checkout)"
    parts = [str(git.get("commit") or "?")[:10]]
    if git.get("branch"):
        parts.append(f"on {git['branch']}")
    if "dirty" in git:
        parts.append("(uncommitted changes)" if git["dirty"] else "(clean)")
    parts += [f"{k} {v}" for k, v in git.items() if k not in ("commit", "branch", "dirty")]
    return " ".join(parts)


# "et al." and the like end with a period but not a sentence.
_ABBREVIATIONS = re.compile(r"(?:\bet al|\be\.g|\bi\.e|\bcf|\bvs|\bFig|\bEq|\bapprox)$", re.IGNORECASE)


def first_sentence(text: str, short: int = 120) -> str:
    """The whole of a short ``text``, else its first sentence (not cut inside parentheses or at "et al.")."""
    text = " ".join(text.split())
    if len(text) <= short:
        return text
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        at_end = char == "." and (i + 1 == len(text) or text[i + 1] == " ")
        if at_end and depth <= 0 and not _ABBREVIATIONS.search(text[:i]):
            return text[: i + 1]
    return text


def table(columns: Iterable[str], right: Iterable[str] = (), title: str | None = None) -> Table:
    """A table with these columns; those in ``right`` (numbers) are right-aligned."""
    aligned = set(right)
    built = Table(title=title)
    for column in columns:
        built.add_column(column, justify="right" if column in aligned else "left")
    return built


def pairs(rows: Iterable[tuple[str, Any]]) -> Table:
    """A borderless two-column table of ``key value`` lines (``runs show``)."""
    built = Table(show_header=False, box=None)
    built.add_column(style="bold")
    built.add_column()
    for key, value in rows:
        built.add_row(key, str(value))
    return built
