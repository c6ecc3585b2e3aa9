"""`deepatlas bench all`: both tables, and the final-loss verdict of table (b)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deepatlas.bench.common import loss_verdict
from deepatlas.cli import app

pytest.importorskip("transformers", reason="the bert family compares with Hugging Face")


def test_loss_verdict_compares_the_gap_with_the_seed_noise() -> None:
    close = loss_verdict({"ours": [1.00, 1.10], "ref": [1.05, 1.12]})
    assert close["noise"] == 0.10000000000000009 and close["equal"]
    apart = loss_verdict({"ours": [1.00, 1.01], "ref": [2.00, 2.01]})
    assert apart["gap"] > 0.9 and not apart["equal"]


def test_bench_all_prints_both_tables() -> None:
    result = CliRunner().invoke(app, ["bench", "all", "--family", "bert", "--defaults-family", "bert", "--no-extras",
                                      "--loss-steps", "2", "--calls", "1", "--rounds", "1", "--warmup", "1", "--peak-n", "128"])
    assert result.exit_code == 0, result.output
    assert "(a) same settings" in result.output and "(b) each side's defaults" in result.output
    assert "Hugging Face" in result.output and "reference defaults" in result.output
    assert "float32, fused optimizer" in result.output  # Hugging Face's Trainer defaults in table (b)


def test_bench_all_leaves_bf16_out_where_it_is_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepatlas.bench import common, suite

    monkeypatch.setattr(common, "fast_bf16", lambda device: False)
    result = suite.run(suite.Suite(families=("bert",), defaults_families=(), extras=False, calls=1, rounds=1, warmup=1, peak_n=128))
    assert [r["setting"] for r in result["same"]] == ["float32"]
    assert any("bf16 rows left out" in line for line in result["skipped"])
