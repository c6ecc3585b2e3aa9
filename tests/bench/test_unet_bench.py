"""`deepatlas bench unet`: our UNet and diffusers' UNet2DModel are the same network (parameter for parameter)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers", reason="the benchmark compares with diffusers")

from deepatlas.bench.unet import UNetBench, param_counts, run


@pytest.mark.parametrize("bench, expected", [
    (UNetBench(), 409_345),  # the ddpm-fashion-mnist recipe's 16/32/32 UNet
    (UNetBench(width=32), 1_624_577),  # unet-fashion
    (UNetBench(width=32, multipliers=(1, 2, 2, 2), attention_at=(16,), in_channels=3, input_size=32), None),
])
def test_parameter_counts_equal_diffusers(bench: UNetBench, expected: int | None) -> None:
    counts = param_counts(bench)
    assert counts["ours"] == counts["diffusers"]
    if expected is not None:
        assert counts["ours"] == expected


def test_rows_of_both_precisions() -> None:
    b = UNetBench(width=8, multipliers=(1, 2), attention_at=(4,), groups=4, input_size=8, batch_size=2, calls=1, rounds=1,
                  warmup=1, peak_n=128, bf16=True)
    rows = run(b, torch.device("cpu"))
    assert [r["precision"] for r in rows] == ["float32", "bf16 autocast"]
    for r in rows:
        assert r["ours_images_per_s"] > 0 and r["diffusers_images_per_s"] > 0 and r["ratio"] > 0 and r["flops_per_step"] > 0
