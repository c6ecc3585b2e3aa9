"""The run store: one folder per run plus a SQLite index of all runs.

::

    runs/
      index.sqlite                 # WAL mode; safe with several training processes
      <run-id>/
        config.yaml                # the fully resolved config: `deepatlas train runs/<id>` re-runs it
        metrics.jsonl              # one JSON object per log line and per epoch
        summary.json               # status, metrics, parameters, FLOPs, time, memory, versions, data
        checkpoints/last.safetensors, best.safetensors
        curves.png, confusion-test.png, ...

The folder is the truth; the index is a cache for listing and filtering that
``RunStore.reindex()`` rebuilds from the folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import RunError, one_of, suggest
from ..io import write_json, write_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    recipe TEXT,
    status TEXT,
    created TEXT,
    updated TEXT,
    model TEXT,
    dataset TEXT,
    task TEXT,
    monitor TEXT,
    best REAL,
    test REAL,
    params INTEGER,
    wall_s REAL,
    path TEXT,
    summary TEXT
)
"""
_COLUMNS = ("id", "recipe", "status", "created", "updated", "model", "dataset", "task",
            "monitor", "best", "test", "params", "wall_s", "path", "summary")


def now_iso() -> str:
    """Local time with milliseconds: runs started in the same second still sort in order."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


def default_runs_dir() -> Path:
    return Path(os.environ.get("DEEPATLAS_RUNS_DIR", "runs"))


class Run:
    """A run folder: its config, summary, metrics and checkpoints."""

    def __init__(self, path: str | Path, store: RunStore | None = None) -> None:
        self.path = Path(path)
        self.id = self.path.name
        self.store = store

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def config(self) -> Any:
        from ..config import Config, read_yaml

        return Config.from_dict(read_yaml(self.config_path))

    @property
    def summary(self) -> dict[str, Any]:
        path = self.path / "summary.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunError(f"{path}: summary is not valid JSON ({exc}).") from None

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")

    def checkpoint(self, kind: str = "last") -> Path:
        return self.path / "checkpoints" / f"{kind}.safetensors"

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Lines of metrics.jsonl, optionally only ``kind`` ("log" or "epoch")."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise RunError(f"{path}: line {number} is not valid JSON.") from None
            if kind is None or row.get("kind") == kind:
                rows.append(row)
        return rows

    def write_summary(self, summary: dict[str, Any]) -> None:
        summary["updated"] = now_iso()
        write_json(self.path / "summary.json", summary)
        if self.store is not None:
            self.store.index(self, summary)

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        summary = self.summary
        summary.update(fields)
        self.write_summary(summary)
        return summary


class RunStore:
    """Creates, finds and lists runs under ``root``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_runs_dir()
        self.index_path = self.root / "index.sqlite"

    # ----------------------------------------------------------------- SQLite index

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.index_path, timeout=60.0, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 60000")
            _retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            _retry(lambda: conn.execute(_SCHEMA))
            yield conn
        finally:
            conn.close()

    def index(self, run: Run, summary: dict[str, Any]) -> None:
        """Insert or update the run's row (one atomic statement)."""
        best = (summary.get("best") or {}).get("value")
        monitor = (summary.get("best") or {}).get("metric")
        test = _primary_test_metric(summary, monitor)
        row = (
            run.id, summary.get("recipe"), summary.get("status"), summary.get("created"), summary.get("updated"),
            summary.get("model"), summary.get("dataset"), summary.get("task"), monitor, best, test,
            (summary.get("params") or {}).get("total"), (summary.get("time") or {}).get("wall_s"),
            str(run.path.resolve()), json.dumps(summary),
        )
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._db() as conn:
            _retry(lambda: conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", row))

    def rows(self, recipe: str | None = None, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Index rows, newest first, filtered by recipe and status."""
        if not self.index_path.exists():
            if not self.root.is_dir():
                return []
            self.reindex()
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if recipe:
            query += " AND recipe = ?"
            args.append(recipe)
        if status:
            query += " AND status = ?"
            args.append(status)
        query += " ORDER BY created DESC, id DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self._db() as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(query, args).fetchall()]

    def reindex(self) -> int:
        """Rebuild the index from the run folders; returns the number of runs."""
        with self._db() as conn:
            _retry(lambda: conn.execute("DELETE FROM runs"))
        count = 0
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []:
            run = Run(folder, self)
            if (folder / "summary.json").is_file():
                self.index(run, run.summary)
                count += 1
        return count

    # ----------------------------------------------------------------- runs

    def create(self, config: Any, summary: dict[str, Any]) -> Run:
        """A new run folder with its resolved config and a first summary."""
        stem = config.recipe or config.model.name
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            run_id = f"{stem}-{stamp}-{secrets.token_hex(2)}"
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 100 random collisions
            raise RunError(f"{self.root}: could not create a unique run folder.")
        run = Run(self.root / run_id, self)
        write_text(run.config_path, config.to_yaml())
        run.write_summary({"id": run_id, "recipe": config.recipe, "created": now_iso(), **summary})
        return run

    def open(self, ref: str | Path) -> Run:
        """A run by id, unique id prefix, or folder path."""
        path = Path(ref)
        if path.is_dir() and (path / "config.yaml").is_file():
            return Run(path, self if path.parent.resolve() == self.root.resolve() else RunStore(path.parent))
        candidate = self.root / str(ref)
        if candidate.is_dir() and (candidate / "config.yaml").is_file():
            return Run(candidate, self)
        names = sorted(p.name for p in self.root.iterdir() if (p / "config.yaml").is_file()) if self.root.is_dir() else []
        matches = [n for n in names if n.startswith(str(ref))]
        if len(matches) == 1:
            return Run(self.root / matches[0], self)
        if len(matches) > 1:
            raise RunError(f"run {ref!r} is ambiguous in {self.root}: {one_of(matches)}.")
        where = f"{self.root}" + ("" if names else " (no runs there; see --runs-dir or $DEEPATLAS_RUNS_DIR)")
        raise RunError(f"run {ref!r}: not found in {where}." + suggest(str(ref), names))

    def latest(self) -> Run:
        rows = self.rows(limit=1)
        if not rows:
            raise RunError(f"no runs in {self.root}.")
        return Run(Path(rows[0]["path"]), self)


def _primary_test_metric(summary: dict[str, Any], monitor: str | None) -> float | None:
    test = (summary.get("eval") or {}).get("test") or {}
    if not test or not monitor:
        return None
    value = test.get(monitor.split("/", 1)[-1])
    return value if isinstance(value, (int, float)) else None


def _retry(fn: Any, attempts: int = 50) -> Any:
    """Retry on 'database is locked' beyond the busy timeout (e.g. during WAL switch-over)."""
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return None
