"""Tokenizers: character level (char-rnn, nanoGPT) or byte-level BPE (Sennrich et al. 2016;
Radford et al. 2019) trained with the ``tokenizers`` library, saved with every run as ``tokenizer.json``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..io import write_text


class CharTokenizer:
    """One token per character; optional special tokens come after the characters."""

    kind = "char"

    def __init__(self, chars: Sequence[str], specials: Sequence[str] = ()) -> None:
        self.chars = list(chars)
        self.specials = list(specials)
        self.itos = self.chars + self.specials
        self.stoi = {s: i for i, s in enumerate(self.chars)}
        self.special_ids = {s: len(self.chars) + i for i, s in enumerate(self.specials)}

    @classmethod
    def train(cls, text: str, specials: Sequence[str] = ()) -> CharTokenizer:
        return cls(sorted(set(text)), specials)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as exc:
            raise DataError(f"character {exc.args[0]!r} is not in the tokenizer's vocabulary.") from None

    def encode_with_specials(self, text: str) -> list[int]:
        """``encode``, with the special tokens written in the text (``"the [MASK] sun"``) read as themselves."""
        if not self.specials:
            return self.encode(text)
        pattern = "(" + "|".join(re.escape(s) for s in sorted(self.specials, key=len, reverse=True)) + ")"
        ids: list[int] = []
        for piece in re.split(pattern, text):
            ids += [self.special_ids[piece]] if piece in self.special_ids else self.encode(piece)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in ids if i < len(self.chars))

    def token_id(self, special: str) -> int | None:
        return self.special_ids.get(special)

    def char_lengths(self) -> torch.Tensor:
        return torch.tensor([1] * len(self.chars) + [0] * len(self.specials), dtype=torch.float64)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "char", "chars": self.chars, "specials": self.specials}


class BPETokenizer:
    """Byte-level BPE from the ``tokenizers`` library."""

    kind = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int, specials: Sequence[str] = ()) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=list(specials), show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        chunk = 1 << 16
        tok.train_from_iterator((text[i : i + chunk] for i in range(0, len(text), chunk)), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def encode_with_specials(self, text: str) -> list[int]:
        return self.encode(text)  # the tokenizers library reads its special tokens in the text

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def token_id(self, special: str) -> int | None:
        return self.tokenizer.token_to_id(special)

    def char_lengths(self) -> torch.Tensor:
        return torch.tensor([len(self.decode([i])) for i in range(self.vocab_size)], dtype=torch.float64)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "bpe", "tokenizer": json.loads(self.tokenizer.to_str())}


def tokenizer_from_json(obj: dict[str, Any]) -> CharTokenizer | BPETokenizer:
    if obj.get("kind") == "char":
        return CharTokenizer(obj["chars"], obj.get("specials", ()))
    if obj.get("kind") == "bpe":
        from tokenizers import Tokenizer

        return BPETokenizer(Tokenizer.from_str(json.dumps(obj["tokenizer"])))
    raise DataError(f"unknown tokenizer kind {obj.get('kind')!r}.")


def save_tokenizer(tokenizer: CharTokenizer | BPETokenizer, folder: Path) -> None:
    write_text(folder / "tokenizer.json", json.dumps(tokenizer.to_json()))


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    path = Path(path)
    try:
        return tokenizer_from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise DataError(f"{path}: not a deepatlas tokenizer ({exc}).") from None
