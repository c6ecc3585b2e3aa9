"""Language-modelling objectives: BERT's masking proportions, LM metrics and the carried state of truncated BPTT."""

from __future__ import annotations

import math

import pytest
import torch

from deepatlas.data.text import StreamBatch
from deepatlas.errors import ConfigError, DataError
from deepatlas.registry import create_model
from deepatlas.tasks.language import (
    CausalLM,
    CausalLMConfig,
    MaskedLM,
    MaskedLMConfig,
    _lm_stats,
    mask_tokens,
    start_state,
)


def test_masking_follows_15_80_10_10() -> None:
    ids = torch.randint(3, 100, (400, 250))
    gen = torch.Generator().manual_seed(0)
    inputs, selected = mask_tokens(ids, MaskedLMConfig(), mask_id=0, vocab_size=100, generator=gen)
    n = selected.sum().item()
    assert n / ids.numel() == pytest.approx(0.15, abs=0.005)
    masked = (inputs[selected] == 0).float().mean().item()
    kept = (inputs[selected] == ids[selected]).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / 100, abs=0.01)  # 10% kept + random draws that hit the same token
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing else changes


def test_special_tokens_are_never_selected() -> None:
    ids = torch.full((10, 50), 7)
    _, selected = mask_tokens(ids, MaskedLMConfig(mask_prob=1.0), 0, 10, special_ids=(7,))
    assert not selected.any()


def test_masked_lm_needs_a_mask_token() -> None:
    with pytest.raises(ConfigError, match=r"\[MASK\]"):
        MaskedLM(MaskedLMConfig(), {"vocab_size": 10, "special_ids": {}})


def test_bits_per_character_and_perplexity() -> None:
    logits = torch.zeros(2, 3, 4)  # uniform over 4 tokens: 2 bits each
    targets = torch.tensor([[0, 1, 2], [3, 0, 1]])
    task = CausalLM(CausalLMConfig(), {"_char_lengths": torch.ones(4, dtype=torch.float64)})
    m = task.reduce(_lm_stats(logits, targets, torch.ones(4, dtype=torch.float64)))
    assert m["loss"] == pytest.approx(math.log(4)) and m["perplexity"] == pytest.approx(4.0)
    assert m["bpc"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- truncated BPTT: the carried state


def stream_batch(rows: int, t: int, reset: bool | list[bool], seed: int) -> StreamBatch:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randint(0, 65, (rows, t), generator=g), torch.randint(0, 65, (rows, t), generator=g)
    flags = torch.tensor(reset) if isinstance(reset, list) else torch.full((rows,), reset)
    return StreamBatch(x, y, flags)


class Spy(torch.nn.Module):
    """A character LSTM that records the initial and final state of every ``step``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inner = create_model("lstm-char", n_embd=8, hidden=12, block_size=16)
        self.calls: list[tuple[object, object]] = []

    def step(self, idx: torch.Tensor, state: object = None) -> tuple[torch.Tensor, object]:
        logits, final = self.inner.step(idx, state)
        self.calls.append((state, final))
        return logits, final

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.inner(idx)


def carrying(**options: object) -> CausalLM:
    return CausalLM(CausalLMConfig(carry_state=True, **options), {"sampling": "stream", "_char_lengths": torch.ones(65)})


def test_the_state_is_carried_detached_and_reset_at_each_new_track() -> None:
    task, model = carrying(), Spy().train()
    batches = [stream_batch(3, 5, True, 0), stream_batch(3, 5, False, 1), stream_batch(3, 5, [False, True, False], 2),
               stream_batch(3, 5, True, 3)]
    losses = [task.training_step(model, b, "main").loss for b in batches]
    (first, f0), (second, f1), (third, _), (fourth, _) = model.calls
    assert first is None and fourth is None  # a pass starts from zeros
    h, c = second
    assert torch.equal(h, f0[0]) and torch.equal(c, f0[1])  # batch k + 1 starts where batch k ended...
    assert not h.requires_grad and h.grad_fn is None and f0[0].grad_fn is not None  # ...cut from its graph
    assert torch.equal(third[0][:, 1], torch.zeros_like(third[0][:, 1]))  # a row that restarts gets zeros
    assert torch.equal(third[0][:, [0, 2]], f1[0][:, [0, 2]]) and torch.equal(third[1][:, [0, 2]], f1[1][:, [0, 2]])
    losses[1].backward()  # the graph of batch 2 ends at its initial state: nothing to reach batch 1's
    assert all(p.grad is not None for p in model.parameters())
    zero_start = torch.nn.functional.cross_entropy(model.inner(batches[1].x).flatten(0, 1), batches[1].y.flatten())
    assert not torch.allclose(losses[1], zero_start)  # carrying changes the loss
    saved = task.state_dict()["carried"]
    assert isinstance(saved, tuple) and all(not s.requires_grad for s in saved)
    fresh = carrying()
    fresh.load_state_dict({k: v for k, v in task.state_dict().items()})
    assert fresh.state_dict()["carried"] is saved


def test_a_shorter_batch_continues_the_first_tracks() -> None:
    carried = (torch.arange(12.0).view(1, 4, 3), -torch.arange(12.0).view(1, 4, 3))
    start = start_state(carried, torch.zeros(2, dtype=torch.bool), 2, torch.device("cpu"))
    assert torch.equal(start[0], carried[0][:, :2]) and torch.equal(start[1], carried[1][:, :2])
    with pytest.raises(DataError, match="a batch of 5 rows follows one of 4 without a reset"):
        start_state(carried, torch.zeros(5, dtype=torch.bool), 5, torch.device("cpu"))
    assert start_state(carried, torch.ones(5, dtype=torch.bool), 5, torch.device("cpu")) is None


def test_validation_threads_the_state_and_reports_the_windows_from_zeros_too() -> None:
    task, model = carrying(), Spy()
    batches = [stream_batch(4, 6, True, 10), stream_batch(4, 6, False, 11), stream_batch(2, 6, False, 12)]
    task.training_step(model.train(), stream_batch(4, 6, True, 9), "main")
    train_state = task.state_dict()["carried"]
    metrics = task.evaluate(model, batches).metrics
    assert task.state_dict()["carried"] is train_state  # validation keeps its own state
    assert model.calls[1][0] is None  # evaluation starts from zeros, whatever training carries
    plain = CausalLM(CausalLMConfig(), {"_char_lengths": torch.ones(65)})
    windows = plain.evaluate(model, [(b.x, b.y) for b in batches]).metrics
    assert metrics["window_loss"] == pytest.approx(windows["loss"], rel=1e-6)
    assert metrics["window_bpc"] == pytest.approx(windows["bpc"], rel=1e-6)
    assert metrics["loss"] != pytest.approx(windows["loss"], rel=1e-6)
    assert set(metrics) == set(CausalLM.metric_directions(task.config))
    assert set(CausalLM.metric_directions(CausalLMConfig())) == {"loss", "perplexity", "accuracy", "bpc"}


def test_carrying_needs_stream_batches_and_a_recurrent_model() -> None:
    with pytest.raises(ConfigError, match="task.carry_state: .* data.sampling=stream"):
        CausalLM(CausalLMConfig(carry_state=True), {"sampling": "random"})
    gpt = create_model("gpt-tiny", n_layer=1, n_embd=16, n_head=2, block_size=8)
    with pytest.raises(ConfigError, match=r"task.carry_state: GPT has no recurrent state .*model.name=lstm-char"):
        carrying().check_model(gpt)
    carrying().check_model(Spy())
    CausalLM(CausalLMConfig(), {"sampling": "random"}).check_model(gpt)  # without carry_state: anything goes
    with pytest.raises(DataError, match="no reset flags"):
        carrying().training_step(Spy(), (torch.zeros(2, 4, dtype=torch.long),) * 2, "main")
