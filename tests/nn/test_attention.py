"""Attention against the paper's formula, against torch.nn.MultiheadAttention, and with a KV cache."""

from __future__ import annotations

import math

import pytest
import torch

from deepatlas.nn.attention import (
    KVCache,
    MultiHeadAttention,
    attention,
    causal_mask,
    padding_mask,
    reference_attention,
)
from deepatlas.nn.positional import Rotary, sinusoidal_table


def qkv(b: int = 2, h: int = 3, tq: int = 5, tk: int = 5, d: int = 8) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(b, h, t, d, generator=g) for t in (tq, tk, tk))


def naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Equation (1) with explicit loops over rows: softmax(q k^T / sqrt(d)) v."""
    out = torch.zeros_like(q)
    for idx in torch.cartesian_prod(*(torch.arange(n) for n in q.shape[:-1])):
        b, h, i = idx.tolist()
        scores = torch.tensor([float(q[b, h, i] @ k[b, h, j]) / math.sqrt(q.shape[-1]) for j in range(k.shape[2])])
        if allowed is not None:
            scores[~allowed[..., i, :].expand(q.shape[0], q.shape[1], -1)[b, h]] = float("-inf")
        out[b, h, i] = scores.softmax(0) @ v[b, h]
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_fused_and_reference_equal_the_naive_formula(causal: bool) -> None:
    q, k, v = qkv()
    mask = causal_mask(5, 5) if causal else None
    expected = naive(q, k, v, mask)
    assert torch.allclose(reference_attention(q, k, v, mask), expected, atol=1e-5)
    assert torch.allclose(attention(q, k, v, causal=causal, fused=True), expected, atol=1e-5)
    assert torch.allclose(attention(q, k, v, causal=causal, fused=False), expected, atol=1e-5)


def test_padding_mask_ignores_padded_keys() -> None:
    q, k, v = qkv(tk=6)
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    masked = attention(q, k, v, mask=padding_mask(pad))
    k2, v2 = k.clone(), v.clone()
    k2[0, :, 4:] += 100.0  # changing padded keys changes nothing
    v2[0, :, 4:] -= 100.0
    assert torch.allclose(attention(q, k2, v2, mask=padding_mask(pad)), masked, atol=1e-5)
    assert torch.allclose(masked[0], attention(q[:1], k[:1, :, :4], v[:1, :, :4])[0], atol=1e-5)


def test_causal_mask_with_a_cache_is_bottom_right_aligned() -> None:
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]


@pytest.mark.parametrize(("causal", "cross"), [(False, False), (True, False), (False, True)])
def test_multi_head_attention_equals_torch_with_copied_weights(causal: bool, cross: bool) -> None:
    torch.manual_seed(0)
    d, h = 16, 4
    ours = MultiHeadAttention(d, h, cross=cross).eval()
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True).eval()
    with torch.no_grad():
        w = ref.in_proj_weight
        b = ref.in_proj_bias
        if cross:
            ours.q_proj.weight.copy_(w[:d])
            ours.q_proj.bias.copy_(b[:d])
            ours.kv_proj.weight.copy_(w[d:])
            ours.kv_proj.bias.copy_(b[d:])
        else:
            ours.qkv_proj.weight.copy_(w)
            ours.qkv_proj.bias.copy_(b)
        ours.out_proj.load_state_dict(ref.out_proj.state_dict())
    x = torch.randn(2, 7, d)
    memory = torch.randn(2, 9, d) if cross else x
    ref_mask = torch.ones(7, 7, dtype=torch.bool).triu(1) if causal else None  # torch: True = blocked
    expected = ref(x, memory, memory, attn_mask=ref_mask, need_weights=False)[0]
    got = ours(x, memory if cross else None, causal=causal)
    assert (got - expected).abs().max().item() < 1e-5


def test_incremental_attention_with_cache_equals_full() -> None:
    torch.manual_seed(0)
    layers = [MultiHeadAttention(16, 4).eval() for _ in range(2)]
    rotary = Rotary(4, 32)

    def stack(x: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        for i, mha in enumerate(layers):
            x = x + mha(x, causal=True, rotary=rotary, cache=cache, layer=i)
        return x

    x = torch.randn(2, 10, 16)
    full = stack(x, None)
    cache = KVCache()
    steps = [stack(x[:, :6], cache)]  # a prompt, then one token at a time
    steps += [stack(x[:, t : t + 1], cache) for t in range(6, 10)]
    assert cache.length == 10 and cache.length_at(1) == 10
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_rotary_scores_depend_only_on_relative_position() -> None:
    rot = Rotary(8, 64)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(i: int, j: int) -> float:
        return float(rot(q, i) @ rot(k, j).transpose(-1, -2))
    assert score(3, 1) == pytest.approx(score(13, 11), abs=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)


def test_sinusoidal_table_follows_the_paper() -> None:
    table = sinusoidal_table(50, 16)
    pos, i = 7, 3
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
