"""GPT generation: the KV cache changes nothing, sampling filters do what they say."""

from __future__ import annotations

import pytest
import torch

from deepatlas.models.gpt import sample_next
from deepatlas.registry import create_model


def tiny_gpt(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gpt-tiny", **{"n_layer": 2, "n_embd": 32, "block_size": 16, **kw}).eval()


def generate(model: torch.nn.Module, prompt: torch.Tensor, n: int, seed: int | None, **kw: object) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.stack(list(model.generate(prompt, n, generator=gen, **kw)), dim=1)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rotary"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generation_with_and_without_cache_gives_identical_tokens(positions: str, temperature: float) -> None:
    model = tiny_gpt(positions=positions)
    prompt = torch.randint(0, 65, (2, 5))
    # 40 new tokens: past the 16-token context, so the window slides several times
    cached = generate(model, prompt, 40, seed=3, temperature=temperature, top_k=30)
    recomputed = generate(model, prompt, 40, seed=3, temperature=temperature, top_k=30, use_cache=False)
    assert torch.equal(cached, recomputed)


def test_top_k_and_top_p_restrict_the_candidates() -> None:
    logits = torch.tensor([[5.0, 4.0, 3.0, -10.0, -10.0]])
    gen = torch.Generator().manual_seed(0)
    top2 = {int(sample_next(logits, 1.0, 2, None, gen)) for _ in range(200)}
    assert top2 == {0, 1}
    nucleus = {int(sample_next(logits, 1.0, None, 0.5, gen)) for _ in range(200)}
    assert nucleus == {0}  # p(0) = 0.66 already exceeds 0.5
    assert int(sample_next(logits, 0.0, None, None)) == 0  # temperature 0 is greedy


def test_output_layer_is_tied_to_the_embedding() -> None:
    model = tiny_gpt()
    assert model.lm_head.weight is model.wte.weight
    untied = tiny_gpt(tie_weights=False)
    assert untied.lm_head.weight is not untied.wte.weight


def test_context_longer_than_the_block_is_refused() -> None:
    with pytest.raises(ValueError, match="exceed block_size"):
        tiny_gpt()(torch.zeros(1, 17, dtype=torch.long))


def test_causality_future_tokens_do_not_change_past_logits() -> None:
    model = tiny_gpt()
    x = torch.randint(0, 65, (1, 12))
    y = x.clone()
    y[0, 8:] = (y[0, 8:] + 1) % 65
    assert torch.allclose(model(x)[0, :8], model(y)[0, :8], atol=1e-6)
