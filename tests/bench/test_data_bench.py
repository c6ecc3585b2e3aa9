"""`deepatlas bench data`: every pipeline delivers batches and every consumer trains (timings are not asserted)."""

from __future__ import annotations

import pytest
import torch

from deepatlas.bench.data import CONSUMERS, DataBench, pipelines, run


def test_pipelines_deliver_augmented_batches(fashion_mnist: None) -> None:
    feeds = pipelines(DataBench(limit=64, cifar_images=32, batch_size=8), {c[0] for c in CONSUMERS.values()}, torch.device("cpu"))
    x, y = feeds["fashion-mnist crop+flip"][0]()
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (8,)
    assert feeds["cifar-style crop+flip"][0]()[0].shape == (8, 3, 32, 32)
    v1, v2 = feeds["fashion-mnist two views"][0]()
    assert v1.shape == v2.shape == (8, 1, 28, 28) and not torch.equal(v1, v2) and 0 <= float(v1.min()) <= float(v1.max()) <= 1
    for _ in range(10):  # more batches than an epoch of 64 - 10% validation holds: the stream goes on to the next epoch
        feeds["fashion-mnist crop+flip"][0]()


def test_rows(fashion_mnist: None) -> None:
    rows = run(DataBench(consumers=("mlp", "simclr"), limit=64, batch_size=8, calls=1, rounds=1, warmup=1, peak_n=128),
               torch.device("cpu"))
    assert [r["consumer"] for r in rows] == ["mlp", "simclr"]
    for r in rows:
        assert r["delivered_images_per_s"] > 0 and r["consumed_images_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["delivered_images_per_s"] / r["consumed_images_per_s"])
        assert r["goal_met"] == (r["ratio"] >= 5)
