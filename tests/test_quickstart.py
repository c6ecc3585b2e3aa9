"""The README's main job: the digits quickstart reaches its accuracy bar (reduced budget here)."""

from __future__ import annotations

import deepatlas


def test_quickstart_reaches_97_percent_test_accuracy() -> None:
    run = deepatlas.train("quickstart", ["train.epochs=15"], progress=False)
    assert run.status == "completed"
    assert run.summary["eval"]["test"]["accuracy"] >= 0.97
