"""EMA of weights: the update rule with its warm-up, buffers included."""

from __future__ import annotations

import torch

from deepatlas.engine.ema import EMA


def test_ema_update_rule() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()(torch.randn(8, 2))  # moves the BN running stats
    ema.update(model)
    d = min(0.9, 2 / 11)  # warm-up: (1 + t) / (10 + t) at t = 1
    assert torch.allclose(ema.module[0].weight, d * start + (1 - d) * model[0].weight)
    assert torch.equal(ema.module[1].num_batches_tracked, model[1].num_batches_tracked)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_converges_to_constant_weights() -> None:
    model = torch.nn.Linear(3, 1)
    ema = EMA(model, decay=0.5)
    for _ in range(60):
        ema.update(model)
    assert torch.allclose(ema.module.weight, model.weight)
