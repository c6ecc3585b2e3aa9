"""Labelled text: sequence classification for fine-tuning encoders such as BERT.

Each example becomes ``[CLS] tokens... [PAD]...`` of ``block_size`` tokens (longer
texts are truncated). Splits are stratified: a fixed test split (seed 0) and a
validation split drawn with ``data.split_seed``.

Built in: ``shakespeare-speakers``, who speaks an utterance of Tiny Shakespeare
among its ``num_speakers`` most frequent speakers. Your own: ``text-csv``, a CSV
file with a header and ``text`` and ``label`` columns (names configurable).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..schema import option
from .bundle import PairBatching, TensorPairs
from .images import show_columns, stratified_split
from .preprocess import PaddedTokenPreprocessor
from .text import _with_saved_tokenizer, tiny_shakespeare_text
from .tokenizers import CharTokenizer

SPECIALS = ("[PAD]", "[MASK]", "[CLS]")


@dataclass(frozen=True)
class TextClassOptions:
    block_size: int = option(128, "tokens per example, [CLS] included (longer texts are cut)", low=2)
    test_fraction: float = option(0.15, "fraction held out as the test split (fixed seed)", low=0.05, high=0.5)


@dataclass(frozen=True)
class SpeakersOptions(TextClassOptions):
    num_speakers: int = option(8, "classify among this many most frequent speakers", low=2)


@dataclass(frozen=True)
class TextCsvOptions(TextClassOptions):
    path: str | None = option(None, "CSV file with a header row")
    text_column: str = option("text", "column holding the text")
    label_column: str = option("label", "column holding the label")


class TextClassificationData(PairBatching):
    """Padded token sequences with class labels; batches are ``(ids, labels)``."""

    def __init__(self, name: str, texts: list[str], labels: list[str], config: Any, tokenizer: Any = None) -> None:
        opts = config.options
        self.name, self.config, self.options = name, config, opts
        if not texts:
            raise DataError(f"{name}: no examples.")
        self.class_names = sorted(set(labels))
        y = np.array([self.class_names.index(label) for label in labels])
        self.tokenizer = tokenizer or CharTokenizer.train("".join(texts), SPECIALS)
        pad, cls = self.tokenizer.token_id("[PAD]"), self.tokenizer.token_id("[CLS]")
        self.pad_id, self.cls_id = pad, cls
        if pad is None or cls is None:
            raise DataError(f"{name}: the tokenizer needs [PAD] and [CLS] tokens (data.specials when pre-training).")
        block = opts.block_size
        ids = torch.full((len(texts), block), pad, dtype=torch.long)
        for i, text in enumerate(texts):
            tokens = [cls, *self.tokenizer.encode(text)][:block]
            ids[i, : len(tokens)] = torch.tensor(tokens)
        keep, test = stratified_split(y, opts.test_fraction, seed=0, where=name)
        train, val = stratified_split(y[keep], config.val_fraction, config.split_seed, where=name)
        train, val = keep[train], keep[val]
        if config.limit is not None:
            train = train[: config.limit]
        labels_t = torch.from_numpy(y)
        self.splits = {n: TensorPairs(ids[idx], labels_t[idx], ("<i4", "<i8")) for n, idx in (("train", train), ("val", val), ("test", np.sort(test)))}
        self.meta = {
            "num_classes": len(self.class_names),
            "class_names": self.class_names,
            "vocab_size": self.tokenizer.vocab_size,
            "pad_id": pad,
            "special_ids": {s: self.tokenizer.token_id(s) for s in SPECIALS},
            "tokenizer": self.tokenizer.kind,
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def preprocessor(self) -> PaddedTokenPreprocessor:
        """Strings -> [CLS] + ids, cut and padded to ``block_size``, as the training examples."""
        return PaddedTokenPreprocessor(self.tokenizer, self.options.block_size, self.pad_id, self.cls_id)


def shakespeare_utterances(text: str) -> list[tuple[str, str]]:
    """(speaker, utterance) pairs: blocks that start with a ``NAME:`` line."""
    pairs = []
    for block in text.split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) > 1 and re.fullmatch(r"[A-Z][A-Za-z' ]*:", lines[0]):
            pairs.append((lines[0][:-1], "\n".join(lines[1:])))
    return pairs


def load_speakers(config: Any, state_dir: Path | None = None) -> TextClassificationData:
    """Who says it? Utterances of Tiny Shakespeare's most frequent speakers."""
    pairs = shakespeare_utterances(tiny_shakespeare_text(config.root))
    top = {s for s, _ in Counter(s for s, _ in pairs).most_common(config.options.num_speakers)}
    chosen = [(s, u) for s, u in pairs if s in top]
    return TextClassificationData(
        "shakespeare-speakers", [u for _, u in chosen], [s for s, _ in chosen], config, _with_saved_tokenizer(state_dir)
    )


def load_text_csv(config: Any, state_dir: Path | None = None) -> TextClassificationData:
    opts = config.options
    if not opts.path:
        raise DataError("data.path: text-csv needs a CSV file with text and label columns.")
    path = Path(opts.path).expanduser()
    texts, labels = _read_text_csv(path, opts.text_column, opts.label_column)
    return TextClassificationData(f"text-csv:{path}", texts, labels, config, _with_saved_tokenizer(state_dir))


def _read_text_csv(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """Texts and labels of a CSV with a header; lines are numbered as in an editor (the header is line 1)."""
    texts, labels = [], []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for column in (text_column, label_column):
                if column not in header:
                    raise DataError(f"{path}: no column {column!r} (columns: {show_columns(header)}).")
            for row in reader:
                line = reader.line_num
                if None in row or None in row.values():
                    values = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or ())
                    raise DataError(
                        f"{path}, line {line}: {values} values but the header has {len(header)} columns "
                        "(quote values that contain commas)."
                    )
                label = row[label_column]
                if not label.strip():
                    raise DataError(f"{path}, line {line}, column {label_column!r}: empty label (every row needs one).")
                texts.append(row[text_column])
                labels.append(label)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as a UTF-8 CSV ({' '.join(str(exc).split())}).") from None
    if not texts:
        raise DataError(f"{path}: no rows.")
    if len(set(labels)) < 2:
        raise DataError(
            f"{path}, column {label_column!r}: only one label {labels[0]!r}; a classifier needs at least two classes."
        )
    return texts, labels
