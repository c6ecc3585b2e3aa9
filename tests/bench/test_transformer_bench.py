"""`deepatlas bench transformer` runs side by side and reports sensible numbers (timings are not asserted)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the benchmark compares with Hugging Face")


def test_bench_reports_both_precisions() -> None:
    from deepatlas.bench.transformer import TransformerBench, run

    rows = run(TransformerBench(n_layer=1, n_embd=32, block_size=16, batch_size=2, calls=1, rounds=1, warmup=1, peak_n=128), torch.device("cpu"))
    assert [r["precision"] for r in rows] == ["float32", "bf16 autocast"]
    for r in rows:
        assert r["ours_tokens_per_s"] > 0 and r["hf_tokens_per_s"] > 0 and 0 < r["ours_mfu"] < 5
