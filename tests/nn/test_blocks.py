"""Shared convolutional blocks: channel rounding, squeeze-and-excitation, stochastic depth."""

from __future__ import annotations

import pytest
import torch

from deepatlas.nn.blocks import DropPath, SqueezeExcitation, make_divisible


def test_make_divisible_rounds_to_the_nearest_multiple_without_losing_ten_percent() -> None:
    assert make_divisible(32 * 0.75) == 24
    assert make_divisible(36) == 40  # ties round up
    assert make_divisible(5.6) == 8  # never below the divisor
    assert make_divisible(10) == 16  # 8 would lose 20%
    assert make_divisible(1408) == 1408
    assert make_divisible(3, divisor=4, min_value=1) == 4


def test_squeeze_excitation_counts_two_biased_projections_and_gates_in_zero_one() -> None:
    se = SqueezeExcitation(64, 4)
    assert sum(p.numel() for p in se.parameters()) == 2 * 64 * 4 + 4 + 64
    torch.manual_seed(0)
    x = torch.randn(2, 64, 5, 5)
    y = se(x)
    gate = y / x  # one scale per (example, channel)
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)
    assert ((gate > 0) & (gate < 1)).all()


def test_drop_path_is_the_identity_in_evaluation() -> None:
    drop = DropPath(0.7).eval()
    x = torch.randn(8, 3, 4, 4)
    assert drop(x) is x


def test_drop_path_drops_whole_examples_and_rescales_the_kept_ones() -> None:
    drop = DropPath(0.25).train()
    x = torch.ones(4000, 2, 3, 3)
    torch.manual_seed(0)
    y = drop(x)
    per_example = y.flatten(1)
    assert ((per_example == 0).all(1) | (per_example == 1 / 0.75).all(1)).all()  # all or nothing, scaled by 1/keep
    dropped = (per_example == 0).all(1).float().mean().item()
    assert dropped == pytest.approx(0.25, abs=0.03)
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded: the same examples are dropped
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)  # the expectation is kept


def test_drop_path_off_draws_no_random_numbers() -> None:
    x = torch.randn(3, 2)
    state = torch.get_rng_state()
    assert DropPath(0.0).train()(x) is x
    assert torch.equal(torch.get_rng_state(), state)


def test_drop_path_rejects_probabilities_outside_zero_one() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DropPath(1.5)
