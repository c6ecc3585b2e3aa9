"""Several `deepatlas tune` workers share one study through a real PostgreSQL server.

`.ci/run` starts a throwaway server (`.ci/postgres`) and sets DEEPATLAS_TEST_POSTGRES; in CI a
missing server fails the test, elsewhere it is skipped. To run it locally:
``eval "$(bash .ci/postgres start /tmp/pg)"; pytest tests/tune/test_postgres.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deepatlas.tracking import RunStore
from tests.conftest import tiny_recipe


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty database on the test server (so the workers also race to create Optuna's tables)."""
    url = os.environ.get("DEEPATLAS_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("DEEPATLAS_TEST_POSTGRES is not set: .ci/run starts the server with .ci/postgres")
        pytest.skip("no PostgreSQL server (eval \"$(bash .ci/postgres start /tmp/pg)\" to start one)")
    import sqlalchemy

    name = f"deepatlas_{uuid.uuid4().hex[:10]}"
    server = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    yield url.rsplit("/", 1)[0] + "/" + name
    with server.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    server.dispose()


def test_two_workers_record_every_trial_exactly_once(tmp_path: Path, postgres_url: str) -> None:
    import optuna

    path = tmp_path / "workers.yaml"
    path.write_text(yaml.safe_dump({"extends": "quickstart", "search": {"space": {
        "optim.lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True},
        "model.width": {"type": "int", "low": 16, "high": 64},
    }}}))
    overrides = [o for o in tiny_recipe(**{"train.test": "false", "train.epochs": 1})
                 if not o.startswith(("optim.lr=", "model.width="))]
    study, runs, per_worker = f"workers-{uuid.uuid4().hex[:8]}", tmp_path / "runs", 3
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "deepatlas", "tune", str(path), *overrides, "--trials", str(per_worker),
             "--study", study, "--storage", postgres_url, "--runs-dir", str(runs), "--seed", str(seed), "--quiet",
             "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for seed in (1, 2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]

    loaded = optuna.load_study(study_name=study, storage=postgres_url)
    trials = loaded.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(2 * per_worker))  # every trial once, no gap
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers ran trials
    run_ids = [t.user_attrs["run_id"] for t in trials]
    assert len(set(run_ids)) == len(run_ids)  # each run belongs to one trial
    store = RunStore(runs)
    for t in trials:  # and each run folder names that trial and holds the value the study recorded
        run = store.open(t.user_attrs["run_id"])
        link = json.loads((run.path / "trial.json").read_text())
        assert (link["study"], link["trial"], link["state"]) == (study, t.number, "complete")
        assert link["values"] == pytest.approx(t.values)
        assert run.summary["best"]["value"] == pytest.approx(t.values[0])
    assert len(store.rows()) == len(trials)  # no run without its trial


def test_missing_driver_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    code = (
        "import sys; sys.modules['psycopg2'] = None\n"  # as if psycopg2 were not installed
        "from deepatlas.cli import main; sys.argv = ['deepatlas', 'studies', '--storage', "
        "'postgresql://me:secret@db.example/studies']; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "pip install 'deepatlas[postgres]'" in result.stderr and "secret" not in result.stderr
