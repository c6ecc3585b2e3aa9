"""`deepatlas bench bert`: the same network on both sides, rows with sensible numbers (timings are not asserted)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the benchmark compares with Hugging Face")

from deepatlas.bench.bert import BertBench, param_counts, run

TINY = BertBench(n_layer=1, n_head=2, hidden=32, intermediate=64, vocab_size=20, seq_len=16, batch_size=2,
                 calls=1, rounds=1, warmup=1, peak_n=128, bf16=True)


def test_parameter_counts_equal_hugging_faces() -> None:
    counts = param_counts(BertBench())  # the default: bert-mini's size
    assert counts["ours_encoder"] == counts["hf_bert_model"] == 835_200
    assert counts["ours_masked_lm"] == counts["hf_masked_lm"]


def test_rows_of_both_precisions() -> None:
    rows = run(TINY, torch.device("cpu"))
    assert [r["precision"] for r in rows] == ["float32", "bf16 autocast"]
    for r in rows:
        assert r["ours_tokens_per_s"] > 0 and r["hf_tokens_per_s"] > 0 and 0 < r["ours_mfu"] < 5 and 0 < r["hf_mfu"] < 5
        assert r["ratio"] == pytest.approx(r["ours_tokens_per_s"] / r["hf_tokens_per_s"])
