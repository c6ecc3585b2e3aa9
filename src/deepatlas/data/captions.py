"""Image-caption pairs for contrastive language-image pre-training (CLIP, Radford et al. 2021).

Two sources become a :class:`CaptionData` bundle, whose batches are ``(images, tokens, labels)``:

- ``image-captions``: your pairs, a CSV file with an image path (relative to the CSV's folder)
  and a caption per row (``data.image_column``, ``data.caption_column``); labels are -1.
- ``fashion-mnist-captions``: Fashion-MNIST's images with natural-language captions written from
  sentence templates, synonyms of each class, short class descriptions and a brightness word
  read off the image's pixels. Training captions are drawn afresh for every (seed, epoch, example),
  so a resumed run sees the same ones, and use only the training templates; the validation and test
  captions (one fixed caption per example) and the zero-shot prompts use only the held-out templates
  (``HELD_OUT_TEMPLATES``), which no training caption ever contains.

Captions are tokenized per character (:class:`~deepatlas.data.tokenizers.CharTokenizer`, lower-cased
printable ASCII plus the characters of your captions) with [SOT] and [EOT] around them; [EOT] has the
highest id, which is where CLIP's text tower reads a caption. The tokenizer and the image statistics
are saved with the run (``ImageTextPreprocessor``).
"""

from __future__ import annotations

import csv
import hashlib
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import DataError
from ..io import derive_seed
from ..schema import option
from . import transforms as T
from .bundle import ShuffledBatches
from .images import ImageOptions, ImageSplit, augment_batch, show_columns, stratified_split
from .preprocess import CAPTION_SPECIALS, ImageTextPreprocessor
from .tokenizers import CharTokenizer, load_tokenizer

CAPTION_CHARS = string.ascii_lowercase + string.digits + string.punctuation + " "


@dataclass(frozen=True)
class CaptionOptions(ImageOptions):
    """Options of every image-caption dataset."""

    context_length: int = option(56, "longest caption in tokens with [SOT] and [EOT] (longer captions are cut)", low=3)


@dataclass(frozen=True)
class ImageCaptionsOptions(CaptionOptions):
    """Your image-caption pairs."""

    path: Optional[str] = option(
        None, "CSV file with an image path and a caption per row (paths relative to the file), or a folder of images with a "
        "captions.csv, or a captions.txt of 'file<TAB>caption' lines")
    image_column: str = option("image", "column of the image paths")
    caption_column: str = option("caption", "column of the captions")
    channels: int = option(3, "1: greyscale, 3: RGB", low=1, high=3)
    test_fraction: float = option(0.2, "fraction of the pairs held out as the test split (fixed seed)", low=0.0, high=0.9)


# --------------------------------------------------------------------------- Fashion-MNIST captions

#: what a zero-shot prompt calls each Fashion-MNIST class (the dataset's names, in words)
FASHION_PROMPT_NAMES = (
    "t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
#: the names training captions use for each class; the prompt name first
FASHION_SYNONYMS = (
    ("t-shirt", "tee", "top", "short-sleeved top", "tee shirt"),
    ("pair of trousers", "pair of pants", "pair of slacks", "pair of jeans", "trousers"),
    ("pullover", "sweater", "jumper", "knitted sweater", "woollen pullover"),
    ("dress", "frock", "gown", "summer dress", "evening dress"),
    ("coat", "jacket", "overcoat", "winter coat", "parka"),
    ("sandal", "summer sandal", "strappy sandal", "flip-flop", "open shoe"),
    ("shirt", "button-up shirt", "blouse", "collared shirt", "dress shirt"),
    ("sneaker", "trainer", "running shoe", "sports shoe", "canvas shoe"),
    ("bag", "handbag", "purse", "tote bag", "shoulder bag"),
    ("ankle boot", "boot", "short boot", "chelsea boot", "heeled boot"),
)
FASHION_DESCRIPTIONS = (
    ("with short sleeves", "with a round neck"),
    ("with two long legs", "with a waistband"),
    ("with long sleeves", "to keep warm"),
    ("that reaches the knees", "with a fitted waist"),
    ("with buttons down the front", "for cold weather"),
    ("with thin straps", "that leaves the toes open"),
    ("with a collar", "with buttons and long sleeves"),
    ("with laces", "with a rubber sole"),
    ("with a handle", "to carry things in"),
    ("that covers the ankle", "with a low heel"),
)
BRIGHTNESS = ("dark", "grey", "light")
#: sentence frames of training captions; ``{}`` is the noun phrase with its article
TRAIN_TEMPLATES = (
    "a photo of {}.", "a picture of {}.", "an image of {}.", "{} on a plain background.", "a product photo of {}.",
    "this is {}.", "a close-up of {}.", "a black and white photo of {}.", "a small image of {}.", "here is {}.",
    "a low resolution photo of {}.", "a catalogue picture of {}.", "{}, photographed from the front.", "a shop photo of {}.",
    "{}.", "a scan of {}.",
)
#: held out of training: the validation and test captions and the zero-shot prompts use these only
HELD_OUT_TEMPLATES = (
    "a grayscale photo of {}.", "a blurry photo of {}.", "an item of clothing: {}.", "a cropped photo of {}.",
    "a good photo of {}.", "i am looking at {}.", "there is {} in the picture.", "a rendition of {}.",
)


def with_article(phrase: str) -> str:
    """``a``/``an`` before a noun phrase, unless it already starts with an article."""
    if phrase.split(" ", 1)[0].lower() in ("a", "an", "the"):
        return phrase
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def prompts(names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """For each class name, the prompts of every template (for zero-shot classification by prompt ensembling)."""
    return [[t.format(with_article(n)) for t in templates] for n in names]


def fashion_caption(label: int, brightness: int, rng: np.random.Generator, held_out: bool) -> str:
    """One caption of a Fashion-MNIST image of class ``label``; held-out captions use only the held-out templates
    and name the class by its prompt name."""
    name = FASHION_SYNONYMS[label][0 if held_out or rng.random() < 0.4 else rng.integers(1, len(FASHION_SYNONYMS[label]))]
    phrase = f"{BRIGHTNESS[brightness]} {name}" if held_out or rng.random() < 0.5 else name
    if rng.random() < 0.3:
        phrase += " " + FASHION_DESCRIPTIONS[label][rng.integers(len(FASHION_DESCRIPTIONS[label]))]
    templates = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    return templates[rng.integers(len(templates))].format(with_article(phrase))


# --------------------------------------------------------------------------- the bundle


class CaptionSplit:
    """Images (uint8 (N, C, H, W)), labels (-1: none) and captions: fixed strings, or written by ``write(i, epoch)``."""

    def __init__(self, images: ImageSplit, captions: list[str] | None, brightness: torch.Tensor | None = None) -> None:
        self.images, self.captions, self.brightness = images, captions, brightness
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> torch.Tensor:
        return self.images.labels

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(self.images.fingerprint().encode())
            for caption in self.captions or ():
                h.update(caption.encode() + b"\0")
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class CaptionData(ShuffledBatches):
    """Train/validation/test image-caption splits; batches ``(images (B, C, H, W), tokens (B, L), labels (B,))``.

    ``caption(split, index, epoch)`` is the caption of an example: a fixed one (your CSV, or a held-out
    caption of the evaluation splits) or, for generated training captions, a fresh one per epoch.
    """

    def __init__(
        self, name: str, splits: dict[str, CaptionSplit], test: Any, config: Any, *, generated: bool,
        class_names: list[str] | None, prompt_names: Sequence[str] | None, tokenizer: CharTokenizer,
    ) -> None:
        self.name, self.config, self.options = name, config, config.options
        self.splits, self._load_test, self.generated = splits, test, generated
        self.tokenizer = tokenizer
        train = splits["train"].images
        if len(train) == 0:
            raise DataError(f"{name}: the training split is empty (check data.val_fraction and data.limit).")
        first = train.images[0] if train.images is not None else train.decode(train.files[0])  # type: ignore[index,misc]
        channels, side = int(first.shape[0]), int(first.shape[-1])
        self.mean, self.std = _channel_stats(train, channels) if self.options.normalize else (torch.zeros(channels), torch.ones(channels))
        self._preprocessor = ImageTextPreprocessor(
            channels, side, float(train.scale), tuple(self.mean.tolist()), tuple(self.std.tolist()), tokenizer,
            self.options.context_length,
        )
        self.meta: dict[str, Any] = {
            "in_channels": channels, "input_size": side, "vocab_size": tokenizer.vocab_size,
            "context_length": self.options.context_length, "pad_id": tokenizer.token_id("[PAD]"),
            "mean": [round(v, 6) for v in self.mean.tolist()], "std": [round(v, 6) for v in self.std.tolist()],
            "sizes": {k: len(v) for k, v in splits.items()},
            "_text": self._preprocessor.text,  # strings -> token ids, for the task's zero-shot prompts
        }
        if class_names is not None and prompt_names is not None:
            self.meta.update(
                class_names=class_names, num_classes=len(class_names), prompt_names=list(prompt_names),
                prompt_templates=list(HELD_OUT_TEMPLATES),
            )

    def split(self, name: str) -> CaptionSplit:
        if name == "test" and "test" not in self.splits:
            self.splits["test"] = self._load_test()
        return super().split(name)

    def preprocessor(self) -> ImageTextPreprocessor:
        return self._preprocessor

    def caption(self, split: str, index: int, epoch: int = 0, seed: int = 0) -> str:
        data = self.split(split)
        if data.captions is not None:
            return data.captions[index]
        rng = np.random.default_rng(derive_seed(seed, "caption", epoch, index))
        return fashion_caption(int(data.labels[index]), int(data.brightness[index]), rng, held_out=False)  # type: ignore[index]

    # ----------------------------------------------------------------- batching

    def train_batches(self, epoch: int, seed: int, device: torch.device, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        split = self.splits["train"]
        for i, idx in enumerate(self.epoch_index(epoch, seed, start), start=start):
            gen = torch.Generator().manual_seed(derive_seed(seed, "augment", epoch, i))
            tokens = self._preprocessor.text([self.caption("train", j, epoch, seed) for j in idx.tolist()])
            yield self._images(split, idx, gen).to(device), tokens.to(device), split.labels[idx].to(device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
        data = self.split(split)
        for idx in torch.arange(len(data)).split(self.config.eval_batch_size):
            tokens = self._preprocessor.text([self.caption(split, j) for j in idx.tolist()])
            yield self._images(data, idx, None).to(device), tokens.to(device), data.labels[idx].to(device)

    def _images(self, split: CaptionSplit, idx: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        images = split.images
        raw = images.images[idx] if images.images is not None else torch.stack([images.decode(images.files[j]) for j in idx.tolist()])  # type: ignore[index,misc]
        x = raw.float().div_(images.scale)
        if gen is not None:
            x = augment_batch(x, gen, self.options)
        return T.normalize(x, self.mean, self.std)


def _channel_stats(split: ImageSplit, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    total, total_sq, count = torch.zeros(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64), 0
    for lo in range(0, len(split), 4096):
        idx = range(lo, min(lo + 4096, len(split)))
        x = split.images[lo : lo + 4096] if split.images is not None else torch.stack([split.decode(split.files[j]) for j in idx])  # type: ignore[index,misc]
        x = x.double() / split.scale
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    return mean.float(), (total_sq / count - mean * mean).clamp_min(1e-12).sqrt().float()


def caption_tokenizer(captions: Sequence[str] = (), state_dir: Path | None = None) -> CharTokenizer:
    """The run's tokenizer (reused from ``state_dir`` when the run saved one), else lower-cased printable
    ASCII plus every character of ``captions``, with [PAD], [SOT], [EOT] last."""
    if state_dir is not None and (Path(state_dir) / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(Path(state_dir) / "tokenizer.json")
        if isinstance(tokenizer, CharTokenizer) and tuple(tokenizer.specials) == CAPTION_SPECIALS:
            return tokenizer
    extra = sorted({c for caption in captions for c in caption.lower()} - set(CAPTION_CHARS))
    return CharTokenizer(list(CAPTION_CHARS) + extra, CAPTION_SPECIALS)


# --------------------------------------------------------------------------- loaders


def _brightness(images: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """0 (dark), 1 (grey) or 2 (light): the mean of the lit pixels against the training tertiles ``edges``."""
    x = images.float().flatten(1)
    lit = (x > 0).float()
    level = (x * lit).sum(1) / lit.sum(1).clamp_min(1)
    return torch.bucketize(level, edges)


def load_fashion_mnist_captions(config: Any, state_dir: Path | None = None) -> CaptionData:
    """Fashion-MNIST with generated captions (training: training templates, fresh per epoch; evaluation:
    held-out templates, one fixed caption per example)."""
    from .sources import FASHION_MNIST_CLASSES, _fashion_split

    resize = config.options.resize
    full = _fashion_split("train", config.root, resize)
    keep, held = stratified_split(full.labels.numpy(), config.val_fraction, config.split_seed, where="fashion-mnist-captions")
    if config.limit is not None:
        keep = keep[: config.limit]
    train_images = full.subset(keep)
    x = train_images.images.float().flatten(1)  # type: ignore[union-attr]
    lit = (x > 0).float()
    levels = (x * lit).sum(1) / lit.sum(1).clamp_min(1)
    edges = torch.quantile(levels, torch.tensor([1 / 3, 2 / 3]))

    def evaluation(images: ImageSplit, split: str) -> CaptionSplit:
        bright = _brightness(images.images, edges)  # type: ignore[arg-type]
        captions = [
            fashion_caption(int(y), int(b), np.random.default_rng(derive_seed("held-out caption", split, i)), held_out=True)
            for i, (y, b) in enumerate(zip(images.labels.tolist(), bright.tolist(), strict=True))
        ]
        return CaptionSplit(images, captions, bright)

    splits = {"train": CaptionSplit(train_images, None, _brightness(train_images.images, edges)),  # type: ignore[arg-type]
              "val": evaluation(full.subset(held), "val")}
    return CaptionData(
        "fashion-mnist-captions", splits, lambda: evaluation(_fashion_split("t10k", config.root, resize), "test"), config,
        generated=True, class_names=list(FASHION_MNIST_CLASSES), prompt_names=FASHION_PROMPT_NAMES,
        tokenizer=caption_tokenizer(state_dir=state_dir),
    )


def _read_pairs(path: Path, opts: ImageCaptionsOptions) -> tuple[list[Path], list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            for key, column in (("image_column", opts.image_column), ("caption_column", opts.caption_column)):
                if column not in header:
                    raise DataError(
                        f"data.{key}: column {column!r} is not in {path} (its columns: {show_columns(header)}); "
                        f"set data.{key}=<one of them>."
                    )
            rows = [(r[opts.image_column], r[opts.caption_column]) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"data.path: cannot read {path} as a UTF-8 CSV file ({exc}).") from None
    if not rows:
        raise DataError(f"data.path: {path} has no rows of image-caption pairs.")
    files, captions = [], []
    for line, (image, caption) in enumerate(rows, start=2):
        if not image or not (caption or "").strip():
            raise DataError(f"{path}:{line}: an empty image path or caption (every row needs both).")
        file = (path.parent / image).expanduser()
        if not file.is_file():
            raise DataError(f"{path}:{line}: image {image!r} not found (paths are relative to the CSV's folder: {path.parent}).")
        files.append(file)
        captions.append(caption.strip())
    return files, captions


def _read_caption_lines(path: Path) -> tuple[list[Path], list[str]]:
    """``file<TAB>caption`` per line (blank lines skipped), files relative to the folder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data.path: cannot read {path} as UTF-8 text ({exc}).") from None
    files, captions = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        image, tab, caption = line.partition("\t")
        if not tab or not image.strip() or not caption.strip():
            raise DataError(f"{path}:{number}: expected 'file<TAB>caption', got {line[:60]!r}.")
        file = path.parent / image.strip()
        if not file.is_file():
            raise DataError(f"{path}:{number}: image {image.strip()!r} not found in {path.parent}.")
        files.append(file)
        captions.append(caption.strip())
    if not files:
        raise DataError(f"data.path: {path} has no 'file<TAB>caption' lines.")
    return files, captions


def _pairs(path: Path, opts: ImageCaptionsOptions) -> tuple[list[Path], list[str]]:
    """The pairs of a CSV file, or of a folder's captions.csv or captions.txt."""
    if path.is_file():
        return _read_pairs(path, opts)
    if path.is_dir():
        if (path / "captions.csv").is_file():
            return _read_pairs(path / "captions.csv", opts)
        if (path / "captions.txt").is_file():
            return _read_caption_lines(path / "captions.txt")
        raise DataError(f"data.path: the folder {path} has neither a captions.csv (columns {opts.image_column}, "
                        f"{opts.caption_column}) nor a captions.txt ('file<TAB>caption' lines).")
    raise DataError(f"data.path: {path} does not exist (expected a CSV of image paths and captions, or a folder with one).")


def load_image_captions(config: Any, state_dir: Path | None = None) -> CaptionData:
    """Your pairs: ``data.path=pairs.csv`` with an image path and a caption per row, or a folder with its captions."""
    from .sources import _Decoder, _folder_split

    opts = config.options
    if not opts.path:
        raise DataError("data.path: image-captions needs a CSV file of image paths and captions (data.path=pairs.csv).")
    path = Path(opts.path).expanduser()
    files, captions = _pairs(path, opts)
    images = _folder_split(files, [-1] * len(files), _Decoder(opts.channels, opts.resize))
    rest, test = stratified_split(np.zeros(len(files), dtype=np.int64), opts.test_fraction, seed=0, stratify=False, where=str(path))
    keep, held = stratified_split(np.zeros(len(rest), dtype=np.int64), config.val_fraction, config.split_seed, stratify=False, where=str(path))
    keep, held = rest[keep], rest[held]
    if config.limit is not None:
        keep = keep[: config.limit]

    def part(rows: np.ndarray) -> CaptionSplit:
        rows = np.sort(rows)
        return CaptionSplit(images.subset(rows), [captions[i] for i in rows])

    return CaptionData(
        f"image-captions:{path}", {"train": part(keep), "val": part(held)}, lambda: part(test), config, generated=False,
        class_names=None, prompt_names=None, tokenizer=caption_tokenizer(captions, state_dir),
    )
