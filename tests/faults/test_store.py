"""Faults of the run store: run ids that try to climb out of it, a store that is a file or read-only,
a nonsense status filter. Each is a one-line error (exit code 2 from the CLI) or is contained."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import deepatlas
from deepatlas.errors import RunError
from deepatlas.tracking import Run, RunStore
from deepatlas.tracking.store import RUN_STATUSES, is_safe_id, slugify
from tests.conftest import tiny_recipe


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepatlas", *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The CLI answered with exit code 2 and exactly one line on stderr holding ``words``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def fake_run(folder: Path, status: str = "completed") -> Run:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("{}")
    run = Run(folder, RunStore(folder.parent))
    run.write_summary({"id": folder.name, "status": status, "created": "2026-01-01"})
    return run


def everything_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


# --------------------------------------------------------------------------- ids that climb out


@pytest.mark.parametrize("name", ["../../escaped", "sub/dir", "/abs/x", "..", ".hidden", "a b\tc", "x" * 300])
def test_a_recipe_name_never_leaves_the_store(tmp_path: Path, name: str) -> None:
    store = tmp_path / "A" / "B" / "runs"
    run = deepatlas.train("quickstart", [*tiny_recipe(**{"train.epochs": 1}), f"recipe={name}"],
                          runs_dir=store, progress=False)
    assert run.path.parent == store and is_safe_id(run.id) and len(run.id) <= 128
    assert {p.parts[0] for p in everything_under(tmp_path)} == {"A"}
    assert {p.parts[:2] for p in everything_under(tmp_path / "A") if len(p.parts) > 1} == {("B", "runs")}
    assert deepatlas.open_run(run.id, store).summary["recipe"] == name  # the name itself is kept as data
    assert deepatlas.list_runs(store)[0]["id"] == run.id


def test_a_recipe_file_naming_a_parent_folder_stays_in_the_store(tmp_path: Path) -> None:
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("extends: quickstart\nrecipe: ../../x\n")
    store = tmp_path / "A" / "B" / "runs"
    result = cli("train", str(recipe), *tiny_recipe(**{"train.epochs": 1}), "--runs-dir", str(store))
    assert result.returncode == 0, result.stderr
    (folder,) = [p for p in store.iterdir() if p.is_dir()]
    assert folder.name.startswith("x-") and not (tmp_path / "A" / "x").exists()
    assert sorted(p.name for p in (tmp_path / "A").iterdir()) == ["B"]


@pytest.mark.parametrize("name,slug", [("../../escaped", "escaped"), ("sub/dir", "sub-dir"), ("/abs/x", "abs-x"),
                                       ("..", "run"), ("a..b", "a.b"), ("quickstart", "quickstart")])
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug and is_safe_id(slug)


def test_an_id_or_prefix_never_resolves_outside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fake_run(store / "inside-1")
    outside = fake_run(tmp_path / "outside-1")
    (store / "linked-1").symlink_to(outside.path, target_is_directory=True)
    runs = RunStore(store)
    assert runs.open("inside").id == "inside-1"
    cwd = os.getcwd()
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    os.chdir(tmp_path / "elsewhere" / "deeper")  # so that "../outside-1" is no folder from here, only from the store
    try:
        for ref in ("../outside-1", "../outside", "..", "/etc", "inside-1/..", ""):
            with pytest.raises(RunError) as caught:
                runs.open(ref)
            assert "\n" not in str(caught.value)
    finally:
        os.chdir(cwd)
    for ref in ("linked-1", "linked"):  # a symlink in the store pointing outside is not followed by id
        with pytest.raises(RunError, match="outside the run store"):
            runs.open(ref)
    assert runs.open(tmp_path / "outside-1").path == tmp_path / "outside-1"  # a folder the user names: anywhere
    assert runs.open(str(tmp_path / "outside-1")).id == "outside-1"


def test_reindex_skips_a_folder_linked_from_outside(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fake_run(store / "inside-1")
    outside = fake_run(tmp_path / "outside-1")
    (store / "linked-1").symlink_to(outside.path, target_is_directory=True)
    assert RunStore(store).reindex() == 1
    assert [r["id"] for r in RunStore(store).rows()] == ["inside-1"]


def test_latest_opens_by_id_not_by_the_indexed_path(tmp_path: Path) -> None:
    import sqlite3

    store = tmp_path / "store"
    fake_run(store / "inside-1")
    outside = fake_run(tmp_path / "outside-1")
    with contextlib.closing(sqlite3.connect(store / "index.sqlite")) as conn:  # a tampered index
        conn.execute("UPDATE runs SET path = ?", (str(outside.path),))
        conn.commit()
    assert RunStore(store).latest().path == store / "inside-1"


# --------------------------------------------------------------------------- a store that cannot be one


def test_a_regular_file_as_runs_dir_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "not-a-folder"
    store.write_text("x")
    for args in (["runs"], ["runs", "--json"], ["runs", "show", "abc"],
                 ["train", "quickstart", *tiny_recipe(**{"train.epochs": 1})]):
        line = one_line_error(cli(*args, "--runs-dir", str(store)), str(store))
        assert "file, not a folder" in line or "not found" in line
    with pytest.raises(RunError, match="is a file, not a folder; pass a folder with --runs-dir"):
        RunStore(store).rows()
    assert store.read_text() == "x"


def test_tune_with_a_regular_file_as_runs_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match=r"run store .*file: is a file, not a folder"):
        deepatlas.tune("lenet5-fashion-mnist-search", trials=1, runs_dir=tmp_path / "file", progress=False)


def test_a_runs_dir_under_a_regular_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match=r"run store .*file/runs: .*--runs-dir"):
        deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), runs_dir=tmp_path / "file" / "runs",
                        progress=False)


def test_read_only_store_mocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EROFS where the store writes (the folder, the index): one line for train; listing reads the folders."""
    store = tmp_path / "store"
    fake_run(store / "kept-1")
    real_mkdir = Path.mkdir

    def read_only_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.parent == store or self == store:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    with pytest.raises(RunError, match=r"run store .*store: cannot write there \(Read-only file system\); pass a "
                                       r"writable folder with --runs-dir"):
        deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), runs_dir=store, progress=False)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    assert [r["id"] for r in deepatlas.list_runs(store)] == ["kept-1"]
    assert [r["id"] for r in deepatlas.list_runs(store, status="completed")] == ["kept-1"]


def test_index_that_sqlite_cannot_open_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "index.sqlite").mkdir(parents=True)  # sqlite: "unable to open database file"
    with pytest.raises(RunError, match=r"run store .*store: .*; pass a writable folder with --runs-dir"):
        RunStore(store).rows()


@contextlib.contextmanager
def read_only_bind(source: Path, target: Path) -> Iterator[None]:
    """``source`` mounted read-only at ``target`` (root only; skips where the kernel or container refuses)."""
    target.mkdir()
    why = None
    if os.geteuid() != 0:
        why = "a read-only bind mount needs root (chmod does not stop root)"
    else:
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(target)], capture_output=True, text=True)
        why = f"cannot bind-mount read-only here: {done.stderr.strip()}" if done.returncode else None
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI runs as root and must run the read-only store test")
        pytest.skip(why)
    try:
        probe = target / ".probe"
        with pytest.raises(OSError):
            probe.write_text("x")
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_read_only_store_for_real(tmp_path: Path) -> None:
    source = tmp_path / "source"
    run = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), runs_dir=source, progress=False)
    before = everything_under(source)
    with read_only_bind(source, tmp_path / "ro"):
        store = tmp_path / "ro"
        one_line_error(cli("train", "quickstart", *tiny_recipe(**{"train.epochs": 1}), "--runs-dir", str(store)),
                       str(store), "Read-only file system", "--runs-dir")
        listed = cli("runs", "--json", "--runs-dir", str(store))
        assert listed.returncode == 0 and run.id in listed.stdout, listed.stderr
        assert deepatlas.open_run(run.id, store).status == "completed"
    assert everything_under(source) == before


# --------------------------------------------------------------------------- filters


def test_an_unknown_status_is_one_line_listing_the_statuses(tmp_path: Path) -> None:
    line = one_line_error(cli("runs", "--status", "bogus", "--runs-dir", str(tmp_path)), "'bogus'")
    assert all(status in line for status in RUN_STATUSES)
    fake_run(tmp_path / "r-1")
    assert [r["id"] for r in deepatlas.list_runs(tmp_path, status="completed")] == ["r-1"]
    assert deepatlas.list_runs(tmp_path, status="failed") == []
