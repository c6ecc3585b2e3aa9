"""Two real trainings share one run store while another process lists it without pause."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import deepatlas


def test_two_trainings_and_a_lister_share_a_store(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "deepatlas", "train", "quickstart", "train.epochs=15", "train.threads=1",
               "train.checkpoint_every=2", "--runs-dir", str(runs), "-q"]
    trainings = [subprocess.Popen([*command, f"train.seed={seed}"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=os.environ.copy()) for seed in (0, 1)]
    listings, seen = 0, set()
    while any(p.poll() is None for p in trainings):
        rows = deepatlas.list_runs(runs) if runs.is_dir() else []  # a lock error or a torn row would raise here
        seen |= {r["id"] for r in rows}
        assert all(r["status"] in ("created", "running", "completed") for r in rows)
        listings += 1
    for p in trainings:
        assert p.wait() == 0, p.stderr.read().decode()[-2000:]
    rows = deepatlas.list_runs(runs)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"completed"} and seen <= {r["id"] for r in rows}
    assert listings > 10  # the listing really ran beside the trainings
