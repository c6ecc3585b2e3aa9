"""Sequence-to-sequence learning with teacher forcing (Vaswani et al. 2017).

Training: cross-entropy of the target shifted left, given the target shifted
right, with label smoothing (epsilon 0.1 in the paper) and [PAD] ignored.
Validation: the teacher-forced loss and token accuracy, and greedy decoding scored
by exact match (the whole output right) and character accuracy (matching
characters over the longer of output and reference, position by position).
Evaluation decodes with beam search. Models that return their attention weights (the
recurrent encoder-decoders) also draw them for a few test sources (``attention-<split>.png``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import TASKS
from ..schema import option
from .base import Evaluation, StepOutput, Task, accumulate


@dataclass(frozen=True)
class Seq2SeqConfig:
    label_smoothing: float = option(0.1, "label smoothing epsilon (the paper: 0.1)", low=0.0, high=1.0)
    beam_size: int = option(4, "beam width in evaluation (the paper: 4)", low=1)
    length_penalty: float = option(0.6, "GNMT length penalty alpha (the paper: 0.6)", low=0.0)
    extra_length: int = option(10, "decode up to source length + this many tokens", low=0)


def string_scores(predicted: torch.Tensor, reference: torch.Tensor, pad: int) -> dict[str, torch.Tensor]:
    """Exact matches and per-position character matches of token sequences (B, L) padded with ``pad``."""
    length = max(predicted.shape[1], reference.shape[1])
    p = F.pad(predicted, (0, length - predicted.shape[1]), value=pad)
    r = F.pad(reference, (0, length - reference.shape[1]), value=pad)
    p_len, r_len = (p != pad).sum(1), (r != pad).sum(1)
    same = ((p == r) & (r != pad)).sum(1)
    return {
        "sequences": torch.tensor(float(len(p)), device=p.device),
        "exact": ((p == r).all(1)).sum().double(),
        "char_matches": same.sum().double(),
        "char_slots": torch.maximum(p_len, r_len).sum().double(),
    }


class Seq2Seq(Task):
    """Batches ``(src, tgt)`` with tgt = [BOS] y [EOS] [PAD]...; the model is an encoder-decoder."""

    monitor = ("exact_match", "max")
    directions: ClassVar[Mapping[str, str]] = {
        "loss": "min", "token_accuracy": "max", "exact_match": "max", "char_accuracy": "max",
        "beam_exact_match": "max", "beam_char_accuracy": "max",
    }
    capabilities = frozenset({"predict"})
    predicts = "sequences"
    data_kind = "pairs"

    def __init__(self, config: Seq2SeqConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        self.pad, self.eos = int(meta.get("pad_id", 0)), int(meta.get("eos_id", 2))

    def _loss(self, model: nn.Module, src: torch.Tensor, tgt: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(src, tgt[:, :-1])  # (B, T, vocab)
        target = tgt[:, 1:]
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=self.pad, label_smoothing=smoothing)
        return loss, logits

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        src, tgt = batch
        loss, _ = self._loss(model, src, tgt, self.config.label_smoothing)
        return StepOutput(loss, {"loss": loss.detach()})

    def _reference(self, tgt: torch.Tensor) -> torch.Tensor:
        return tgt[:, 1:].masked_fill(tgt[:, 1:] == self.eos, self.pad)  # y without [BOS] and [EOS]

    def _decoded(self, predicted: torch.Tensor) -> torch.Tensor:
        return predicted.masked_fill(predicted == self.eos, self.pad)

    def decode_length(self, src: torch.Tensor) -> int:
        """The longest output decoded for sources ``src``: the longest source + ``extra_length``."""
        return int((src != self.pad).sum(1).max()) + self.config.extra_length

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        src, tgt = batch
        logits = model(src, tgt[:, :-1]).float()
        target = tgt[:, 1:]
        keep = target != self.pad
        nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=self.pad, reduction="sum")
        stats = {
            "nll_sum": nll.double(),
            "tokens": keep.sum().double(),
            "correct": ((logits.argmax(-1) == target) & keep).sum().double(),
        }
        greedy = model.greedy(src, self.decode_length(src))
        stats.update(string_scores(self._decoded(greedy), self._reference(tgt), self.pad))
        return stats

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        loss = float(totals["nll_sum"]) / max(float(totals["tokens"]), 1.0)
        out = {
            "loss": loss,
            "token_accuracy": float(totals["correct"]) / max(float(totals["tokens"]), 1.0),
            "exact_match": float(totals["exact"]) / max(float(totals["sequences"]), 1.0),
            "char_accuracy": float(totals["char_matches"]) / max(float(totals["char_slots"]), 1.0),
        }
        if "beam_exact" in totals:
            out["beam_exact_match"] = float(totals["beam_exact"]) / max(float(totals["sequences"]), 1.0)
            out["beam_char_accuracy"] = float(totals["beam_char_matches"]) / max(float(totals["beam_char_slots"]), 1.0)
        return out

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``output`` token ids (B, L) by beam search (as evaluation decodes), [EOS] replaced by [PAD]. As in
        evaluation, decoding stops at the longest source of the batch + ``extra_length`` tokens."""
        out = model.beam_search(inputs, self.decode_length(inputs), self.config.beam_size, self.config.length_penalty)
        return {"output": self._decoded(out)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> Evaluation:
        """Greedy metrics as in validation, plus beam search; keeps a few decoded examples."""
        batches = list(batches)
        totals = accumulate(self, model, batches)
        beam: dict[str, torch.Tensor] = {}
        examples = []
        model.eval()
        for src, tgt in batches:
            out = model.beam_search(src, self.decode_length(src), self.config.beam_size, self.config.length_penalty)
            scores = string_scores(self._decoded(out), self._reference(tgt), self.pad)
            for key in ("exact", "char_matches", "char_slots"):
                beam[key] = beam.get(key, 0) + scores[key].cpu()
            decode = self.meta.get("_decode", lambda ids: ids.tolist())
            if len(examples) < 20:
                examples += [
                    {"source": decode(s), "output": decode(o), "reference": decode(t)}
                    for s, o, t in zip(src[:20], out[:20], tgt[:20], strict=True)
                ]
        totals.update({f"beam_{k}": v for k, v in beam.items()})
        return Evaluation(self.reduce(totals), {"examples": examples[:20]})

    def figures(self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Any = None) -> list[Path]:
        """``attention-<split>.png`` for models that return their attention weights (``returns_attention``:
        the recurrent encoder-decoders): source characters across, greedy output characters down."""
        from ..report.attention import attention_figures

        return attention_figures(self, model, batch, folder, split)


TASKS.register(
    "seq2seq", Seq2Seq, Seq2SeqConfig(), family="seq2seq",
    doc="encoder-decoder with teacher forcing; exact match and character accuracy (greedy, beam search)",
)
