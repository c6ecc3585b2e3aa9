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
import errno
import json
import logging
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import RunError, one_of, suggest
from ..io import write_json, write_text

log = logging.getLogger(__name__)

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


# Every status a run can have (the trainer's FitResult statuses, plus the two before it starts).
RUN_STATUSES = ("created", "running", "completed", "failed", "interrupted", "pruned")

# A run id is one path component that cannot climb out of the store: letters, digits, '.', '_', '-',
# not starting with '.' or '-' (no hidden folders, no option look-alikes), at most 128 characters.
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_STEM_CHARS = 64  # the recipe part of an id; the stamp and random suffix add 21


def is_safe_id(name: str) -> bool:
    """Whether ``name`` can be a run id: a single safe path component (see ``_SAFE_ID``)."""
    return bool(_SAFE_ID.fullmatch(name))


def slugify(name: str, fallback: str = "run") -> str:
    """``name`` as the stem of a run id: unsafe characters become '-', no leading dots or dashes."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).lstrip(".-")[:_STEM_CHARS].rstrip(".-")
    slug = re.sub(r"\.{2,}", ".", slug)  # no '..' anywhere, even inside a name
    return slug or fallback


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
    def _db(self, path: str | Path | None = None) -> Iterator[sqlite3.Connection]:
        """A connection to the index (``path`` = ":memory:" for a throwaway one); a store that cannot
        be written (read-only, not a folder, no permission) is a one-line RunError."""
        if path is None:
            self.ensure_root()
        try:
            conn = sqlite3.connect(path or self.index_path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            conn.execute("PRAGMA busy_timeout = 60000")
            _retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            _retry(lambda: conn.execute(_SCHEMA))
            yield conn
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise self._unusable(exc) from None
        finally:
            conn.close()

    def ensure_root(self) -> Path:
        """Create the store folder and return it, or say in one line why it cannot be one."""
        if self.root.exists() and not self.root.is_dir():
            raise RunError(
                f"run store {self.root}: is a file, not a folder; pass a folder with --runs-dir "
                "(or $DEEPATLAS_RUNS_DIR)."
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unusable(exc) from None
        return self.root

    def _unusable(self, exc: BaseException) -> RunError:
        reason = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            reason = f"cannot write there ({reason})"
        return RunError(
            f"run store {self.root}: {reason}; pass a writable folder with --runs-dir (or $DEEPATLAS_RUNS_DIR)."
        )

    def index(self, run: Run, summary: dict[str, Any]) -> None:
        """Insert or update the run's row (one atomic statement)."""
        with self._db() as conn:
            self._insert(conn, run, summary)

    @staticmethod
    def _insert(conn: sqlite3.Connection, run: Run, summary: dict[str, Any]) -> None:
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
        _retry(lambda: conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", row))

    def rows(self, recipe: str | None = None, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Index rows, newest first, filtered by recipe and status. A store that cannot be written
        (e.g. a read-only copy) is listed from its folders, without the index."""
        if status and status not in RUN_STATUSES:
            raise RunError(f"status {status!r}: not a run status (one of {', '.join(RUN_STATUSES)}).")
        if self.root.exists() and not self.root.is_dir():
            self.ensure_root()  # raises: a file is no run store
        if not self.root.is_dir():
            return []
        if not os.access(self.root, os.W_OK) or (self.index_path.exists() and not os.access(self.index_path, os.W_OK)):
            log.info("run store %s is not writable: listing its folders without the index", self.root)
            with self._db(":memory:") as conn:
                self._fill(conn)
                return self._query(conn, recipe, status, limit)
        if not self.index_path.exists():
            self.reindex()
        with self._db() as conn:
            return self._query(conn, recipe, status, limit)

    @staticmethod
    def _query(conn: sqlite3.Connection, recipe: str | None, status: str | None, limit: int | None) -> list[dict[str, Any]]:
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
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query, args).fetchall()]

    def reindex(self) -> int:
        """Rebuild the index from the run folders; returns the number of runs."""
        with self._db() as conn:
            _retry(lambda: conn.execute("DELETE FROM runs"))
            return self._fill(conn)

    def _fill(self, conn: sqlite3.Connection) -> int:
        """Insert a row for every run folder inside the store; returns how many."""
        count = 0
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []:
            if (folder / "summary.json").is_file() and self._inside(folder):
                run = Run(folder, self)
                self._insert(conn, run, run.summary)
                count += 1
        return count

    # ----------------------------------------------------------------- runs

    def create(self, config: Any, summary: dict[str, Any]) -> Run:
        """A new run folder with its resolved config and a first summary."""
        stem = slugify(config.recipe or config.model.name)  # `recipe: ../../x` must not climb out
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.ensure_root()
        for _ in range(100):
            run_id = f"{stem}-{stamp}-{secrets.token_hex(2)}"
            if not (is_safe_id(run_id) and self._inside(self.root / run_id)):  # pragma: no cover - slugify's job
                raise RunError(f"run id {run_id!r}: would leave the run store {self.root}.")
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise self._unusable(exc) from None
        else:  # pragma: no cover - 100 random collisions
            raise RunError(f"{self.root}: could not create a unique run folder.")
        run = Run(self.root / run_id, self)
        try:
            write_text(run.config_path, config.to_yaml())
        except OSError as exc:
            raise self._unusable(exc) from None
        run.write_summary({"id": run_id, "recipe": config.recipe, "created": now_iso(), **summary})
        return run

    def open(self, ref: str | Path) -> Run:
        """A run by id, unique id prefix, or folder path.

        A folder path may be anywhere (the user named it); an id or prefix only ever finds a folder
        inside the store: it is one safe path component, and the folder it resolves to (through any
        symlink) must lie under the store's root."""
        path = Path(ref)
        if path.is_dir() and (path / "config.yaml").is_file():
            return Run(path, self if path.parent.resolve() == self.root.resolve() else RunStore(path.parent))
        text = str(ref)
        if not is_safe_id(text):
            raise RunError(
                f"run {text!r}: no such run folder, and not a run id (ids are letters, digits, '.', '_' "
                f"and '-', without '/'); see `deepatlas runs --runs-dir {self.root}`."
            )
        candidate = self.root / text
        if candidate.is_dir() and (candidate / "config.yaml").is_file():
            return Run(self._checked(candidate), self)
        names = sorted(p.name for p in self.root.iterdir() if (p / "config.yaml").is_file()) if self.root.is_dir() else []
        matches = [n for n in names if n.startswith(text)]
        if len(matches) == 1:
            return Run(self._checked(self.root / matches[0]), self)
        if len(matches) > 1:
            raise RunError(f"run {ref!r} is ambiguous in {self.root}: {one_of(matches)}.")
        where = f"{self.root}" + ("" if names else " (no runs there; see --runs-dir or $DEEPATLAS_RUNS_DIR)")
        raise RunError(f"run {ref!r}: not found in {where}." + suggest(str(ref), names))

    def latest(self) -> Run:
        rows = self.rows(limit=1)
        if not rows:
            raise RunError(f"no runs in {self.root}.")
        return self.open(rows[0]["id"])  # by id, not the indexed path: the index is only a cache

    def _inside(self, folder: Path) -> bool:
        root = self.root.resolve()
        return folder.resolve().is_relative_to(root) and folder.resolve() != root

    def _checked(self, folder: Path) -> Path:
        if not self._inside(folder):
            raise RunError(
                f"run {folder.name!r}: its folder resolves to {folder.resolve()}, outside the run store "
                f"{self.root}; open it by its folder path instead."
            )
        return folder


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
