"""`deepatlas bench precision`: float32 against bf16 by the work per step, and auto's pick (timings are not asserted)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from deepatlas.bench.precision import PrecisionBench, run
from deepatlas.cli import app

TINY = PrecisionBench(gpt_batches=(1, 4), wide_gpt_batches=(1,), resnet_batches=(2,), unet_batches=(1,), calls=1, rounds=1, warmup=1, peak_n=128)


def test_rows_by_work_and_autos_pick_follows_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepatlas.engine import device as dev

    monkeypatch.setattr(dev, "fast_bf16", lambda device: True)  # as on a CPU with AMX, whatever this one has
    small = 0.6e9  # between the two GPT steps' work (0.3 and 1.2 GFLOP)
    monkeypatch.setattr(dev, "BF16_MIN_FLOPS", float(small))
    monkeypatch.setattr(dev, "CONV_BF16_MIN_FLOPS", 0.0)  # conv nets have their own, lower threshold
    monkeypatch.setattr(dev, "WIDE_BF16_MIN_FLOPS", 0.0)  # and so do networks at least WIDE_LAYER wide
    rows = run(TINY, torch.device("cpu"))
    assert [(r["model"], r["batch"]) for r in rows] == [("gpt 4x128", 1), ("gpt 4x128", 4), ("gpt 4x256", 1), ("resnet20", 2),
                                                        ("unet", 1)]
    gpt1, gpt4, *_ = rows
    assert gpt4["gflop_per_step"] == pytest.approx(4 * gpt1["gflop_per_step"], rel=0.05)  # the work scales with the batch
    assert gpt1["gflop_per_step"] * 1e9 < small < gpt4["gflop_per_step"] * 1e9
    assert (gpt1["auto"], gpt4["auto"]) == ("fp32", "bf16")
    assert rows[2]["auto"] == rows[3]["auto"] == rows[4]["auto"] == "bf16"
    for r in rows:
        assert r["fp32_per_s"] > 0 and r["bf16_per_s"] > 0
        assert r["bf16_speedup"] == pytest.approx(r["bf16_per_s"] / r["fp32_per_s"])
        assert r["agrees"] == ((r["auto"] == "bf16") == (r["bf16_speedup"] > 1))
        assert r["even"] == (abs(r["bf16_speedup"] - 1) < 0.03)


def test_the_command_prints_the_table_and_the_machine() -> None:
    result = CliRunner().invoke(app, ["bench", "precision", "--gpt-batch", "1", "--wide-gpt-batch", "1", "--resnet-batch", "2", "--unet-batch", "1", "--calls", "1", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert "bf16 speed-up" in result.output and "auto picks" in result.output and "GFLOP per step" in result.output
