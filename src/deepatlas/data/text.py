"""Text: tokenizers, corpora and language-modelling batches.

Tokenizers: character level (the vocabulary is the corpus's characters, as in
char-rnn and nanoGPT) or byte-level BPE (Sennrich et al. 2016; Radford et al.
2019) trained on the training split with the ``tokenizers`` library. The
tokenizer is saved with every run (``tokenizer.json``).

A corpus is split contiguously: the first (1 - val_fraction - test_fraction)
for training, then validation, then test (Tiny Shakespeare: 90% / 10%, as
nanoGPT, with the held-out 10% also serving as the test split). An "epoch" is
``steps_per_epoch`` training batches (the validation interval). Validation covers
the whole split in non-overlapping windows of ``block_size`` tokens (W = (n - 1) // T
of them for a split of n tokens), so its loss is exact rather than estimated.

``data.sampling`` chooses how the windows go into batches:

- ``random`` (default): a training batch is ``batch_size`` windows of
  ``block_size + 1`` tokens at random offsets, drawn with a generator seeded by
  (seed, epoch, batch); evaluation batches are runs of consecutive windows.
- ``stream``: the split is cut into B contiguous *tracks* (Zaremba, Sutskever &
  Vinyals 2014, the classic Penn Treebank set-up; B = ``batch_size`` in training,
  ``eval_batch_size`` in evaluation), and batch j holds window j of every track, so
  row b of batch j + 1 continues row b of batch j and a recurrent model can carry its
  state from one batch to the next (truncated back-propagation through time, the
  ``causal-lm`` task's ``carry_state``). Every batch is a :class:`StreamBatch`
  ``(x, y, reset)``; ``reset`` (B,) marks the rows whose track starts again there
  (their state must start from zeros). Training tracks hold q = W // B windows each
  (the last W - qB < B windows of the split are not trained on, so that every
  batch is full); a pass over them is q batches, and batch number g = epoch *
  steps_per_epoch + i is window g mod q of each track, so the stream runs on across
  epochs and every track restarts (``reset``) at each new pass; with nothing random,
  a resumed run lands on the same batch. Evaluation tracks share the W windows out
  exactly (the first W mod B tracks one window longer, so the last batch has fewer
  rows): the same windows as ``random`` evaluates, in another order, and the same
  metrics for a model that starts every window from zeros.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch

from ..errors import DataError
from ..io import derive_seed
from ..schema import option
from .bundle import SplitBundle
from .download import cache_dir, check_sha256, data_roots, download, find_file
from .preprocess import TokenPreprocessor
from .tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- corpora

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def tiny_shakespeare_text(root: str | None) -> str:
    """Karpathy's Tiny Shakespeare (1,115,394 characters), found locally or downloaded and verified."""
    folders = []
    for base in data_roots(root):
        folders += [base / "tinyshakespeare", base / "tiny-shakespeare", base]
    folders.append(cache_dir() / "tinyshakespeare")
    path = find_file(["input.txt", "tinyshakespeare.txt"], folders)
    if path is None:
        path = download(TINY_SHAKESPEARE_URL, cache_dir() / "tinyshakespeare" / "input.txt",
                        sha256_of_content=TINY_SHAKESPEARE_SHA256)
    content = path.read_bytes()
    check_sha256(path, content, TINY_SHAKESPEARE_SHA256)
    return content.decode("utf-8")


def read_text_path(path: str | None) -> tuple[str, str]:
    """The user's UTF-8 text: a file, or every ``.txt`` file under a folder (sorted, joined)."""
    if not path:
        raise DataError("data.path: the text dataset needs a file or folder of UTF-8 text (data.path=...).")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data.path: {p} does not exist.")
    files = sorted(f for f in p.rglob("*.txt") if f.is_file()) if p.is_dir() else [p]
    if not files:
        raise DataError(f"data.path: no .txt files under {p}.")
    parts = []
    for f in files:
        try:
            parts.append(f.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{f}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
        except OSError as exc:
            raise DataError(f"{f}: cannot read ({exc.strerror or exc}).") from None
    return f"text:{p}", "\n".join(parts)


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class TextOptions:
    """Options of a text corpus for language modelling."""

    tokenizer: Literal["char", "bpe"] = option("char", "character-level or byte-level BPE tokens")
    vocab_size: int = option(1024, "bpe: vocabulary size to train", low=16)
    specials: tuple[str, ...] = option((), "special tokens to add, e.g. [PAD], [MASK], [CLS] for BERT")
    block_size: int = option(64, "tokens of context per training window", low=1)
    steps_per_epoch: int = option(250, "training batches per epoch (the validation interval)", low=1)
    sampling: Literal["random", "stream"] = option(
        "random", "random: training windows at random offsets; stream: batch_size contiguous tracks, each batch "
        "continuing the previous one row by row (truncated BPTT with task.carry_state)",
    )
    test_fraction: float = option(0.0, "held-out tail used as the test split (0: the validation split)", low=0.0, high=0.5)


@dataclass(frozen=True)
class TextFileOptions(TextOptions):
    """Options of the user's own text."""

    path: str | None = option(None, "a UTF-8 text file or a folder of .txt files")


class TokenSplit:
    """A contiguous run of token ids."""

    def __init__(self, ids: torch.Tensor) -> None:
        self.ids = ids
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(self.ids.numpy().astype("<i4").tobytes()).hexdigest()
        return self._fingerprint


class StreamBatch(NamedTuple):
    """A batch of ``data.sampling: stream``: row b continues row b of the previous batch unless ``reset[b]``."""

    x: torch.Tensor  # (rows, T) inputs
    y: torch.Tensor  # (rows, T) targets: x shifted by one token
    reset: torch.Tensor  # (rows,) bool, on the CPU: the track starts here, so its state starts from zeros


def stream_tracks(windows: int, tracks: int, share_all: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(first window, windows) of each of ``tracks`` contiguous tracks of ``windows`` consecutive windows.

    ``share_all``: every window goes to a track (the first ``windows % tracks`` tracks get one more);
    otherwise each track gets ``windows // tracks`` and the remainder at the end is left out.
    """
    q, r = divmod(windows, tracks)
    b = torch.arange(tracks)
    if not share_all:
        return b * q, torch.full((tracks,), q)
    return b * q + b.clamp(max=r), q + (b < r).long()


class TextData(SplitBundle):
    """Language-modelling windows over a tokenised corpus."""

    def __init__(self, name: str, text: str, config: Any, tokenizer: CharTokenizer | BPETokenizer | None = None) -> None:
        opts: TextOptions = config.options
        self.name, self.config, self.options = name, config, opts
        n = len(text)
        n_train = int(n * (1 - config.val_fraction - opts.test_fraction))  # nanoGPT: int(0.9 n)
        n_test = int(n * opts.test_fraction)
        n_val = n - n_train - n_test
        parts = {"train": text[:n_train], "val": text[n_train : n_train + n_val], "test": text[n_train + n_val :]}
        if tokenizer is None:
            if opts.tokenizer == "char":
                tokenizer = CharTokenizer.train(text, opts.specials)  # all characters, as nanoGPT
            else:
                tokenizer = BPETokenizer.train(parts["train"], opts.vocab_size, opts.specials)
        self.tokenizer = tokenizer
        self.splits = {k: TokenSplit(torch.tensor(tokenizer.encode(v), dtype=torch.long)) for k, v in parts.items()}
        if n_test == 0:
            self.splits["test"] = self.splits["val"]
        if config.limit is not None:
            self.splits["train"] = TokenSplit(self.splits["train"].ids[: config.limit])
        if len(self.splits["train"]) <= opts.block_size + 1:
            raise DataError(f"{name}: the training split has {len(self.splits['train'])} tokens, fewer than block_size + 2.")
        if opts.sampling == "stream":
            windows = (len(self.splits["train"]) - 1) // opts.block_size
            if windows < config.batch_size:
                raise DataError(
                    f"data.batch_size: stream sampling cuts the training split into batch_size = {config.batch_size} "
                    f"tracks, but it has only {windows} windows of block_size = {opts.block_size} tokens; "
                    "lower data.batch_size or data.block_size."
                )
            log.info("%s: stream of %d tracks; a pass over them is %d batches of %d tokens per track",
                     name, config.batch_size, windows // config.batch_size, opts.block_size)
        self.meta = {
            "_char_lengths": tokenizer.char_lengths(),  # characters per token, for bits per character
            "vocab_size": tokenizer.vocab_size,
            "block_size": opts.block_size,
            "sampling": opts.sampling,
            "tokenizer": tokenizer.kind,
            "special_ids": {s: tokenizer.token_id(s) for s in opts.specials},
            # without a [PAD] token no id is padding (-1): a model must not mask a real character
            "pad_id": tokenizer.token_id("[PAD]") if "[PAD]" in opts.specials else -1,
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def preprocessor(self) -> TokenPreprocessor:
        """Strings -> token ids with the run's tokenizer (saved with the run; ``sample`` reads it back)."""
        return TokenPreprocessor(self.tokenizer, self.options.block_size)

    def num_batches(self, split: str = "train") -> int:
        if split == "train":
            return self.options.steps_per_epoch
        windows = (len(self.split(split)) - 1) // self.options.block_size
        return math.ceil(windows / self.config.eval_batch_size)

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` of shape (batch, block): y is x shifted by one token (stream: a :class:`StreamBatch`)."""
        if self.options.sampling == "stream":
            yield from self._train_stream(epoch, device, start)
            return
        ids, block = self.splits["train"].ids, self.options.block_size
        offsets = torch.arange(block + 1)
        for i in range(start, self.num_batches()):
            gen = torch.Generator().manual_seed(derive_seed(seed, "windows", epoch, i))
            starts = torch.randint(len(ids) - block - 1, (self.config.batch_size,), generator=gen)
            window = ids[starts[:, None] + offsets]  # (B, block + 1)
            yield window[:, :-1].to(device), window[:, 1:].to(device)

    def _train_stream(self, epoch: int, device: torch.device, start: int) -> Iterator[StreamBatch]:
        """Window g mod q of every training track, for the global batch number g (see the module docstring)."""
        ids, block = self.splits["train"].ids, self.options.block_size
        first, length = stream_tracks((len(ids) - 1) // block, self.config.batch_size, share_all=False)
        per_pass = int(length[0])
        for i in range(start, self.num_batches()):
            j = (epoch * self.num_batches() + i) % per_pass
            yield self._stream_batch(ids, first + j, j == 0, device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every position of the split once, in non-overlapping windows (stream: in ``eval_batch_size`` tracks)."""
        ids, block = self.split(split).ids, self.options.block_size
        windows = (len(ids) - 1) // block
        if self.options.sampling == "stream":
            first, length = stream_tracks(windows, self.config.eval_batch_size, share_all=True)
            for j in range(int(length.max()) if windows else 0):
                rows = int((length > j).sum())  # the tracks that still have a j-th window: a prefix
                yield self._stream_batch(ids, first[:rows] + j, j == 0, device)
            return
        x = ids[: windows * block].view(windows, block)
        y = ids[1 : windows * block + 1].view(windows, block)
        for lo in range(0, windows, self.config.eval_batch_size):
            yield x[lo : lo + self.config.eval_batch_size].to(device), y[lo : lo + self.config.eval_batch_size].to(device)

    def _stream_batch(self, ids: torch.Tensor, windows: torch.Tensor, reset: bool, device: torch.device) -> StreamBatch:
        block = self.options.block_size
        window = ids[windows[:, None] * block + torch.arange(block + 1)]  # (rows, block + 1)
        return StreamBatch(window[:, :-1].to(device), window[:, 1:].to(device), torch.full((len(windows),), reset))


def _with_saved_tokenizer(state_dir: Path | None) -> CharTokenizer | BPETokenizer | None:
    if state_dir is not None and (state_dir / "tokenizer.json").is_file():
        return load_tokenizer(state_dir / "tokenizer.json")
    return None


def load_tiny_shakespeare(config: Any, state_dir: Path | None = None) -> TextData:
    return TextData("tiny-shakespeare", tiny_shakespeare_text(config.root), config, _with_saved_tokenizer(state_dir))


def load_text(config: Any, state_dir: Path | None = None) -> TextData:
    name, text = read_text_path(config.options.path)
    return TextData(name, text, config, _with_saved_tokenizer(state_dir))
