"""Sequence-to-sequence pairs of characters.

Built in: ``shakespeare-reverse``, lines of Tiny Shakespeare (``min_len`` to
``max_len`` characters, deduplicated) mapped to a transformation of themselves:
``reverse`` (the line backwards: every output character depends on a distant input
position, so the model must learn to attend by position) or ``recase`` (restore
the capitals of a lower-cased line: truecasing, which needs context). Your own:
``text-pairs``, a UTF-8 file of ``source<TAB>target`` lines.

Targets are ``[BOS] y [EOS]`` padded with ``[PAD]``; splits are a fixed test
split (seed 0) and a validation split drawn with ``data.split_seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import DataError
from ..schema import option
from .bundle import PairBatching, TensorPairs
from .preprocess import PaddedTokenPreprocessor
from .text import _with_saved_tokenizer, tiny_shakespeare_text
from .tokenizers import CharTokenizer

SPECIALS = ("[PAD]", "[BOS]", "[EOS]")


@dataclass(frozen=True)
class PairOptions:
    max_len: int = option(40, "longest source or target in characters", low=2)
    test_fraction: float = option(0.1, "fraction held out as the test split (fixed seed)", low=0.01, high=0.5)


@dataclass(frozen=True)
class ReverseOptions(PairOptions):
    transform: Literal["reverse", "recase"] = option("reverse", "reverse: the line backwards; recase: restore capitals")
    min_len: int = option(10, "shortest line in characters", low=1)


@dataclass(frozen=True)
class TextPairsOptions(PairOptions):
    path: str | None = option(None, "UTF-8 file of source<TAB>target lines")


class PairData(PairBatching):
    """Batches ``(src (B, max_len), tgt (B, max_len + 2))`` of token ids."""

    def __init__(self, name: str, pairs: list[tuple[str, str]], config: Any, tokenizer: Any = None) -> None:
        opts = config.options
        self.name, self.config, self.options = name, config, opts
        pairs = [(s, t) for s, t in pairs if 0 < len(s) <= opts.max_len and 0 < len(t) <= opts.max_len]
        if len(pairs) < 10:
            raise DataError(f"{name}: only {len(pairs)} pairs of at most {opts.max_len} characters.")
        self.tokenizer = tokenizer or CharTokenizer.train("".join(s + t for s, t in pairs), SPECIALS)
        self.pad, self.bos, self.eos = (self.tokenizer.token_id(t) for t in SPECIALS)
        n = len(pairs)
        src = torch.full((n, opts.max_len), self.pad, dtype=torch.long)
        tgt = torch.full((n, opts.max_len + 2), self.pad, dtype=torch.long)
        for i, (s, t) in enumerate(pairs):
            s_ids, t_ids = self.tokenizer.encode(s), [self.bos, *self.tokenizer.encode(t), self.eos]
            src[i, : len(s_ids)] = torch.tensor(s_ids)
            tgt[i, : len(t_ids)] = torch.tensor(t_ids)
        rng = np.random.default_rng(0)
        order = rng.permutation(n)
        n_test = int(n * opts.test_fraction)
        test, rest = np.sort(order[:n_test]), order[n_test:]
        rest = np.random.default_rng(config.split_seed).permutation(rest)
        n_val = int(len(rest) * config.val_fraction)
        val, train = np.sort(rest[:n_val]), rest[n_val:]
        if config.limit is not None:
            train = train[: config.limit]
        self.splits = {k: TensorPairs(src[idx], tgt[idx]) for k, idx in (("train", train), ("val", val), ("test", test))}
        self.meta = {
            "vocab_size": self.tokenizer.vocab_size,
            "pad_id": self.pad, "bos_id": self.bos, "eos_id": self.eos,
            "max_len": opts.max_len,
            "tokenizer": self.tokenizer.kind,
            "sizes": {k: len(v) for k, v in self.splits.items()},
            "_decode": self.decode,  # for showing decoded examples
        }

    def preprocessor(self) -> PaddedTokenPreprocessor:
        """Source strings -> ids padded to ``max_len`` (the model decodes them with ``predict``)."""
        return PaddedTokenPreprocessor(self.tokenizer, self.options.max_len, self.pad)

    def decode(self, ids: torch.Tensor) -> str:
        return self.tokenizer.decode([i for i in ids.tolist() if i not in (self.pad, self.bos, self.eos)])


def shakespeare_lines(text: str, min_len: int, max_len: int) -> list[str]:
    """Distinct spoken lines (speaker headers excluded), in order of first appearance."""
    seen: dict[str, None] = {}
    for line in text.split("\n"):
        line = line.strip()
        if min_len <= len(line) <= max_len and not line.endswith(":"):
            seen.setdefault(line, None)
    return list(seen)


def load_reverse(config: Any, state_dir: Path | None = None) -> PairData:
    opts = config.options
    lines = shakespeare_lines(tiny_shakespeare_text(config.root), opts.min_len, opts.max_len)
    if opts.transform == "reverse":
        pairs = [(line, line[::-1]) for line in lines]
    else:
        pairs = [(line.lower(), line) for line in lines]
    return PairData(f"shakespeare-{opts.transform}", pairs, config, _with_saved_tokenizer(state_dir))


def load_text_pairs(config: Any, state_dir: Path | None = None) -> PairData:
    opts = config.options
    if not opts.path:
        raise DataError("data.path: text-pairs needs a file of source<TAB>target lines.")
    path = Path(opts.path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as UTF-8 text ({exc}).") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.count("\t") != 1:
            raise DataError(f"{path}: line {number} is not source<TAB>target.")
        s, t = line.split("\t")
        pairs.append((s, t))
    return PairData(f"text-pairs:{path}", pairs, config, _with_saved_tokenizer(state_dir))
