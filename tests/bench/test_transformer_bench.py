"""`deepatlas bench transformer` runs side by side and reports sensible numbers (timings are not asserted)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the benchmark compares with Hugging Face")


def test_bench_reports_both_precisions() -> None:
    from deepatlas.bench.transformer import TransformerBench, run

    rows = run(TransformerBench(n_layer=1, n_embd=32, block_size=16, batch_size=2, calls=1, rounds=1, warmup=1, peak_n=128, bf16=True), torch.device("cpu"))
    assert [r["precision"] for r in rows] == ["float32", "bf16 autocast"]
    for r in rows:
        assert r["ours_tokens_per_s"] > 0 and r["hf_tokens_per_s"] > 0 and 0 < r["ours_mfu"] < 5


def test_without_fast_bf16_the_bf16_row_is_left_out_and_the_command_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from deepatlas.bench import common
    from deepatlas.bench.transformer import TransformerBench, run
    from deepatlas.cli import app

    monkeypatch.setattr(common, "fast_bf16", lambda device: False)  # as on an AVX2-only CPU, whatever this one has
    tiny = dict(n_layer=1, n_embd=32, block_size=16, batch_size=2, calls=1, rounds=1, warmup=1, peak_n=128)
    assert [r["precision"] for r in run(TransformerBench(**tiny), torch.device("cpu"))] == ["float32"]
    assert [r["precision"] for r in run(TransformerBench(**tiny, bf16=True), torch.device("cpu"))] == ["float32", "bf16 autocast"]
    args = ["bench", "transformer", "--n-layer", "1", "--n-embd", "32", "--block-size", "16", "--batch-size", "2",
            "--calls", "1", "--rounds", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "bf16 rows left out" in result.output and "--bf16" in result.output and "bf16 autocast" not in result.output
    forced = CliRunner().invoke(app, [*args, "--bf16"])
    assert forced.exit_code == 0 and "bf16 autocast" in forced.output and "left out" not in forced.output
