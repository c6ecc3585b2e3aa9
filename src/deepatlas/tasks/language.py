"""Language modelling objectives.

- Causal LM (Radford et al. 2018): L = -(1/T) sum_t log p(x_t | x_<t). Reported as
  loss (nats per token), perplexity exp(L) and bits per character
  (sum of -log2 p over the characters the tokens cover).
- Truncated back-propagation through time (Williams & Peng 1990; the carried state of
  Zaremba, Sutskever & Vinyals 2014): with ``carry_state`` and stream batches
  (``data.sampling: stream``, row b of batch k + 1 continuing row b of batch k), a
  recurrent model starts batch k + 1 from its final state after batch k, detached, so
  that the model is conditioned on the whole stream so far while gradients stop at the
  batch boundary (every T tokens); a track that restarts (``reset``) starts from zeros.
  Validation threads the state through the split's stream batches in order (zeros at the
  start): ``loss``, ``perplexity``, ``accuracy`` and ``bpc`` are then those of the carried
  state, and ``window_loss`` ... ``window_bpc`` those of every window from zeros (the
  numbers ``data.sampling: random`` reports, over the same windows).
- Masked LM (Devlin et al. 2019): choose 15% of positions; replace 80% of them with
  [MASK], 10% with a random token, keep 10%; predict the original tokens there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..registry import TASKS
from ..schema import option
from .base import ExportInputs, StepOutput, Task


@dataclass(frozen=True)
class CausalLMConfig:
    label_smoothing: float = option(0.0, "label smoothing of the training loss", low=0.0, high=1.0)
    carry_state: bool = option(
        False, "truncated BPTT: start each batch from the previous batch's final recurrent state, detached "
        "(needs data.sampling=stream and a recurrent model); validation carries it too",
    )


def _lm_stats(logits: torch.Tensor, targets: torch.Tensor, char_lengths: torch.Tensor | None, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Summable statistics of next-token (or masked-token) predictions."""
    logits, targets = logits.flatten(0, -2).float(), targets.flatten()
    nll = F.cross_entropy(logits, targets, reduction="none")
    keep = torch.ones_like(targets, dtype=torch.bool) if valid is None else valid.flatten()
    # masked sums rather than boolean indexing: no data-dependent shapes (FLOP counting runs on `meta`)
    stats = {
        "nll_sum": (nll.double() * keep).sum(),
        "tokens": keep.sum().double(),
        "correct": ((logits.argmax(-1) == targets) & keep).sum().double(),
    }
    if char_lengths is not None:
        stats["chars"] = (char_lengths.to(targets.device)[targets] * keep).sum()
    return stats


def _lm_metrics(totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
    tokens = float(totals["tokens"])
    loss = float(totals["nll_sum"]) / max(tokens, 1.0)
    metrics = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "accuracy": float(totals["correct"]) / max(tokens, 1.0)}
    if "chars" in totals and float(totals["chars"]) > 0:
        metrics["bpc"] = float(totals["nll_sum"]) / math.log(2) / float(totals["chars"])
    return metrics


LM_DIRECTIONS = {"loss": "min", "perplexity": "min", "accuracy": "max", "bpc": "min"}
WINDOW = "window_"  # the prefix of the metrics of windows started from zeros, next to the carried state's

#: a recurrent state: a tensor or a tuple of tensors (an LSTM's (h, c)), each (layers, B, H), as torch.nn.LSTM
RecurrentState = torch.Tensor | tuple[torch.Tensor, ...]


def _map_state(fn: Any, state: RecurrentState) -> RecurrentState:
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def detach_state(state: RecurrentState) -> RecurrentState:
    """The state as a leaf: the next batch starts from its values, and no gradient reaches the batch before."""
    return _map_state(torch.Tensor.detach, state)


def start_state(carried: RecurrentState | None, reset: torch.Tensor, rows: int, device: torch.device) -> RecurrentState | None:
    """The initial state of a stream batch of ``rows`` rows: the carried state (its first ``rows`` tracks),
    zeros for the rows that ``reset`` marks; None (zeros everywhere) when nothing is carried or every row resets."""
    if carried is None or bool(reset.all()):
        return None
    have = (carried[0] if isinstance(carried, tuple) else carried).shape[1]
    if rows > have:
        raise DataError(f"stream batches: a batch of {rows} rows follows one of {have} without a reset; "
                        "the data must mark new tracks with reset=True.")
    keep = None if not bool(reset.any()) else (~reset).to(device)[None, :, None]

    def start(s: torch.Tensor) -> torch.Tensor:
        s = s[:, :rows].to(device)
        return s if keep is None else s * keep.to(s.dtype)

    return _map_state(start, carried)


class CausalLM(Task):
    """Next-token prediction; batches are ``(x, y)`` with y = x shifted by one (stream: ``(x, y, reset)``)."""

    monitor = ("loss", "min")
    directions: ClassVar[Mapping[str, str]] = LM_DIRECTIONS
    capabilities = frozenset({"predict", "generate", "export"})
    predicts = "next-token"
    data_kind = "tokens"

    def __init__(self, config: CausalLMConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        if config.carry_state and meta.get("sampling") != "stream":
            raise ConfigError(
                "task.carry_state: carrying the recurrent state needs batches that continue each other "
                "(data.sampling=stream, not random windows); set data.sampling=stream or task.carry_state=false."
            )
        self._train_state: RecurrentState | None = None  # the final state of the last training batch, detached
        self._eval_state: RecurrentState | None = None  # the same within one evaluation pass (never saved)

    @classmethod
    def metric_directions(cls, config: Any = None) -> dict[str, str]:
        directions = dict(cls.directions)
        if config is not None and getattr(config, "carry_state", False):
            directions.update({WINDOW + k: v for k, v in cls.directions.items()})
        return directions

    def check_model(self, model: nn.Module) -> None:
        if self.config.carry_state and not callable(getattr(model, "step", None)):
            raise ConfigError(
                f"task.carry_state: {type(model).__name__} has no recurrent state to carry (no step(idx, state)); "
                "use a recurrent model (model.name=lstm-char, gru-char or rnn-char) or set task.carry_state=false."
            )

    def _carried_step(self, model: nn.Module, batch: Any, carried: RecurrentState | None) -> tuple[torch.Tensor, RecurrentState, bool]:
        """Logits from the carried state, the final state (detached) and whether the batch started from zeros."""
        self.check_model(model)
        if len(batch) < 3:
            raise DataError("task.carry_state: the batches carry no reset flags; set data.sampling=stream.")
        x, reset = batch[0], batch[2]
        state = start_state(carried, reset, x.shape[0], x.device)
        logits, final = model.step(x, state)
        return logits, detach_state(final), state is None

    def export_inputs(self, batch: Any) -> ExportInputs:
        """``model(idx)`` with idx (B, T) token ids -> (B, T, vocab) logits; the batch dimension is dynamic
        (the context length is fixed by the export: position embeddings are sliced to T)."""
        return ExportInputs((batch[0],), ("tokens",), ({0: "batch"},))

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        x, y = batch[0], batch[1]
        if self.config.carry_state:
            logits, self._train_state, _ = self._carried_step(model, batch, self._train_state)
        else:
            logits = model(x)  # (B, T, vocab)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), label_smoothing=self.config.label_smoothing)
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        lengths = self.meta.get("_char_lengths")
        if not self.config.carry_state:
            return _lm_stats(model(x), y, lengths)
        logits, self._eval_state, from_zeros = self._carried_step(model, batch, self._eval_state)
        stats = _lm_stats(logits, y, lengths)
        window = stats if from_zeros else _lm_stats(model(x), y, lengths)
        return {**stats, **{WINDOW + k: v for k, v in window.items()}}

    def state_dict(self) -> dict[str, Any]:
        return {"carried": self._train_state} if self.config.carry_state else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._train_state = state.get("carried")

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        metrics = _lm_metrics({k: v for k, v in totals.items() if not k.startswith(WINDOW)})
        window = {k[len(WINDOW):]: v for k, v in totals.items() if k.startswith(WINDOW)}
        if window:
            metrics.update({WINDOW + k: v for k, v in _lm_metrics(window).items()})
        return metrics

    @torch.no_grad()
    def generate(self, model: nn.Module, prompt: torch.Tensor, max_new_tokens: int, **sampling: Any) -> Iterator[torch.Tensor]:
        """New tokens (B,) one at a time after ``prompt`` (B, T), with the model's KV cache."""
        model.eval()
        yield from model.generate(prompt, max_new_tokens, **sampling)

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``probabilities`` (B, T, vocab) of the token after each position, and the most likely ``next`` (B, T)."""
        probabilities = torch.softmax(model(inputs).float(), dim=-1)
        return {"next": probabilities.argmax(-1), "probabilities": probabilities}


@dataclass(frozen=True)
class MaskedLMConfig:
    mask_prob: float = option(0.15, "fraction of positions to predict", low=0.0, high=1.0)
    mask_token_frac: float = option(0.8, "of those: replaced by [MASK]", low=0.0, high=1.0)
    random_token_frac: float = option(0.1, "of those: replaced by a random token (the rest stay)", low=0.0, high=1.0)

    def validate(self, path: str) -> None:
        if self.mask_token_frac + self.random_token_frac > 1.0:
            raise ConfigError(f"{path}.random_token_frac: mask_token_frac + random_token_frac must be <= 1.")


def mask_tokens(
    ids: torch.Tensor, config: MaskedLMConfig, mask_id: int, vocab_size: int, generator: torch.Generator | None = None,
    special_ids: tuple[int, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: returns (inputs, selected) where ``selected`` marks the positions to predict."""
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device="cpu").to(ids.device)

    selected = rand(*ids.shape) < config.mask_prob
    for s in special_ids:
        selected &= ids != s
    action = rand(*ids.shape)
    to_mask = selected & (action < config.mask_token_frac)
    to_random = selected & (action >= config.mask_token_frac) & (action < config.mask_token_frac + config.random_token_frac)
    random_ids = (rand(*ids.shape) * vocab_size).long().clamp_(max=vocab_size - 1)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, selected


class MaskedLM(Task):
    """BERT's masked-language-model pre-training; the model provides ``masked_lm(ids) -> logits``."""

    monitor = ("loss", "min")
    directions: ClassVar[Mapping[str, str]] = LM_DIRECTIONS
    capabilities = frozenset({"predict"})
    predicts = "fill-mask"
    data_kind = "tokens"

    def __init__(self, config: MaskedLMConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        specials = meta.get("special_ids") or {}
        if specials.get("[MASK]") is None:
            raise ConfigError("data.specials: masked language modelling needs a [MASK] token (data.specials=['[PAD]', '[MASK]', '[CLS]']).")
        self.mask_id = int(specials["[MASK]"])
        self.special = tuple(int(v) for v in specials.values() if v is not None)
        self.vocab_size = int(meta["vocab_size"])

    def _loss_and_stats(self, model: nn.Module, ids: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs, selected = mask_tokens(ids, self.config, self.mask_id, self.vocab_size, generator, self.special)
        logits = model.masked_lm(inputs)  # (B, T, vocab)
        stats = _lm_stats(logits, ids, None, selected)
        loss = stats["nll_sum"].float() / stats["tokens"].clamp_min(1).float()
        return loss, stats

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        ids = batch[0]
        logits_loss, stats = self._loss_and_stats(model, ids, None)  # the global RNG: saved in checkpoints
        return StepOutput(logits_loss, {"loss": logits_loss.detach(), "accuracy": stats["correct"] / stats["tokens"].clamp_min(1)})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        ids = batch[0]
        # The same positions are masked in every evaluation of a batch: seed by its content.
        seed = int((ids.long().cpu() * torch.arange(1, ids.numel() + 1).view_as(ids)).sum()) % (2**31)
        return self._loss_and_stats(model, ids, torch.Generator().manual_seed(seed))[1]

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return _lm_metrics(totals)

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``probabilities`` (B, T, vocab) at every position and ``filled``: the ids with each [MASK]
        replaced by its most likely token (never a special token)."""
        probabilities = torch.softmax(model.masked_lm(inputs).float(), dim=-1)
        candidates = probabilities.clone()
        candidates[..., list(self.special)] = -1.0
        filled = torch.where(inputs == self.mask_id, candidates.argmax(-1), inputs)
        return {"filled": filled, "probabilities": probabilities}


TASKS.register("causal-lm", CausalLM, CausalLMConfig(), family="language", doc="next-token prediction (GPT): loss, perplexity, bits per character")
TASKS.register("masked-lm", MaskedLM, MaskedLMConfig(), family="language", doc="BERT masked-language-model pre-training (15%; 80/10/10)")
