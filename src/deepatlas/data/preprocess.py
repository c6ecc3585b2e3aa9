"""The fitted preprocessing of raw user inputs, saved with every run.

A data bundle fits its preprocessing on the training split (an image source its
channel statistics and size, a text source its tokenizer) and saves it with the
run as ``preprocess.json`` (plus ``tokenizer.json``), so that a trained model can
be used on raw inputs without the dataset: ``deepatlas.load(run).predict(raw)``.
Each preprocessor is a small JSON-able object; ``load_preprocessor(folder)``
rebuilds it from what ``save_preprocessor`` wrote.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..io import write_json
from .tokenizers import load_tokenizer, save_tokenizer

FILE = "preprocess.json"


class Preprocessor(Protocol):
    kind: ClassVar[str]
    tokenizer: Any  # the run's tokenizer for text inputs, else None

    def __call__(self, raw: Any) -> Any:
        """Raw inputs -> model inputs (on the CPU)."""
        ...

    def to_json(self) -> dict[str, Any]:
        ...


@dataclass(frozen=True)
class Identity:
    """Inputs the model takes as they are (a graph)."""

    kind: ClassVar[str] = "identity"
    tokenizer: ClassVar[None] = None

    def __call__(self, raw: Any) -> Any:
        return raw

    def to_json(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class ImagePreprocessor:
    """Images -> normalised float (B, C, H, W), exactly as the run's evaluation batches were made.

    Accepts an image path, a PIL image, an array or tensor of raw pixels ((H, W), (C, H, W),
    (B, H, W) or (B, C, H, W), in the data's own pixel scale: 0..16 for digits, 0..255 for
    8-bit images), or a list of any of these. Files and PIL images are 8-bit (0..255).
    Other sizes are resized (bilinear, antialiased) to the run's.
    """

    channels: int
    size: int
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    kind: ClassVar[str] = "images"
    tokenizer: ClassVar[None] = None

    def __call__(self, raw: Any) -> torch.Tensor:
        if isinstance(raw, (list, tuple)):
            return torch.cat([self(item) for item in raw]) if raw else torch.empty(0, self.channels, self.size, self.size)
        if isinstance(raw, (str, Path)) or _is_pil(raw):
            x = self._decode(raw).float() / 255.0
        else:
            x = torch.as_tensor(np.asarray(raw) if not isinstance(raw, torch.Tensor) else raw).float() / self.scale
            x = self._shape(x)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        mean, std = torch.tensor(self.mean), torch.tensor(self.std)
        return (x - mean[:, None, None]) / std[:, None, None]

    def sizes(self, raw: Any) -> list[tuple[int, int]]:
        """(height, width) of each image of ``raw`` as read, before the resize to the run's size (what a
        per-pixel prediction is resized back to)."""
        if isinstance(raw, (list, tuple)):
            return [size for item in raw for size in self.sizes(item)]
        if _is_pil(raw):
            return [(raw.height, raw.width)]
        if isinstance(raw, (str, Path)):
            from PIL import Image

            try:
                with Image.open(raw) as opened:
                    return [(opened.height, opened.width)]
            except OSError as exc:
                raise DataError(f"{raw}: cannot decode image ({exc}).") from None
        x = self._shape(torch.as_tensor(np.asarray(raw) if not isinstance(raw, torch.Tensor) else raw))
        return [(int(x.shape[-2]), int(x.shape[-1]))] * len(x)

    def _shape(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x[None, None]
        elif x.dim() == 3:
            x = x[None] if x.shape[0] == self.channels and self.channels != 1 else x[:, None]
            if self.channels != 1 and x.shape[1] != self.channels:
                raise DataError(f"images: expected {self.channels} channels, got an array of shape {tuple(x.shape)}.")
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise DataError(
                f"images: expected (H, W), (C, H, W), (B, H, W) or (B, C, H, W) with C = {self.channels}, "
                f"got shape {tuple(x.shape)}."
            )
        return x

    def _decode(self, raw: Any) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        mode = "L" if self.channels == 1 else "RGB"
        try:
            if _is_pil(raw):
                img = raw.convert(mode)
            else:
                with Image.open(raw) as opened:
                    img = opened.convert(mode)
            if img.size != (self.size, self.size):
                img = img.resize((self.size, self.size), Image.BILINEAR)  # as the image-folder reader
            array = np.asarray(img, dtype=np.uint8)
        except FileNotFoundError:
            raise DataError(f"{raw}: no such file.") from None
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"{raw}: cannot decode image ({exc}).") from None
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array.copy()).permute(2, 0, 1)[None]  # (1, C, H, W)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _is_pil(raw: Any) -> bool:
    return type(raw).__module__.startswith("PIL.")


class _Tokenizing:
    """Text preprocessors hold the run's tokenizer (saved beside as ``tokenizer.json``)."""

    tokenizer: Any

    def _strings(self, raw: Any) -> list[str]:
        if isinstance(raw, str):
            return [raw]
        if isinstance(raw, Sequence) and all(isinstance(s, str) for s in raw):
            return list(raw)
        raise DataError(f"text: expected a string or a list of strings, got {type(raw).__name__}.")


@dataclass(frozen=True)
class TokenPreprocessor(_Tokenizing):
    """Strings -> token ids (B, T) for a language model; the strings must tokenize to one length.
    Special tokens written in a string (``[MASK]``) are read as themselves."""

    tokenizer: Any
    block_size: int
    kind: ClassVar[str] = "tokens"

    def __call__(self, raw: Any) -> torch.Tensor:
        ids = [self.tokenizer.encode_with_specials(s) for s in self._strings(raw)]
        lengths = {len(i) for i in ids}
        if len(lengths) != 1 or 0 in lengths:
            raise DataError(f"text: the strings tokenize to different or empty lengths {sorted(lengths)}; give one string at a time.")
        if max(lengths) > self.block_size:
            raise DataError(f"text: {max(lengths)} tokens, longer than the model's context ({self.block_size}).")
        return torch.tensor(ids, dtype=torch.long)

    def to_json(self) -> dict[str, Any]:
        return {"block_size": self.block_size}


@dataclass(frozen=True)
class PaddedTokenPreprocessor(_Tokenizing):
    """Strings -> ids (B, length) padded with [PAD], optionally after a [CLS] token, cut at ``length``."""

    tokenizer: Any
    length: int
    pad_id: int
    cls_id: int | None = None
    kind: ClassVar[str] = "padded-tokens"

    def __call__(self, raw: Any) -> torch.Tensor:
        strings = self._strings(raw)
        ids = torch.full((len(strings), self.length), self.pad_id, dtype=torch.long)
        for i, text in enumerate(strings):
            tokens = ([self.cls_id] if self.cls_id is not None else []) + self.tokenizer.encode(text)
            tokens = tokens[: self.length]
            ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids

    def to_json(self) -> dict[str, Any]:
        return {"length": self.length, "pad_id": self.pad_id, "cls_id": self.cls_id}


#: the special tokens of a caption tokenizer; end-of-text is the last, so it has the highest id (CLIP pools there)
CAPTION_SPECIALS = ("[PAD]", "[SOT]", "[EOT]")


@dataclass(frozen=True)
class ImageTextPreprocessor(_Tokenizing):
    """Images and captions for an image-text model (CLIP): ``images(raw)`` as :class:`ImagePreprocessor`
    does, ``text(raw)`` -> ids (B, context_length): [SOT], the lower-cased caption's tokens (cut to fit),
    [EOT], then [PAD]. Called directly, strings are captions and anything else images."""

    channels: int
    size: int
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tokenizer: Any
    context_length: int
    kind: ClassVar[str] = "image-text"

    def __post_init__(self) -> None:  # JSON gives lists
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))

    def __call__(self, raw: Any) -> torch.Tensor:
        texts = isinstance(raw, str) or (isinstance(raw, (list, tuple)) and raw and all(isinstance(r, str) for r in raw))
        return self.text(raw) if texts else self.images(raw)

    def images(self, raw: Any) -> torch.Tensor:
        return ImagePreprocessor(self.channels, self.size, self.scale, self.mean, self.std)(raw)

    def text(self, raw: Any) -> torch.Tensor:
        strings = self._strings(raw)
        pad, sot, eot = (self.tokenizer.token_id(s) for s in CAPTION_SPECIALS)
        ids = torch.full((len(strings), self.context_length), pad, dtype=torch.long)
        for i, caption in enumerate(strings):
            tokens = [sot, *self.tokenizer.encode(caption.lower())[: self.context_length - 2], eot]
            ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": self.channels, "size": self.size, "scale": self.scale, "mean": list(self.mean),
            "std": list(self.std), "context_length": self.context_length,
        }


#: kind -> preprocessor class; modules of other sources add theirs (``data.tabular``), with a ``from_json`` classmethod
KINDS: dict[str, Any] = {
    p.kind: p for p in (Identity, ImagePreprocessor, TokenPreprocessor, PaddedTokenPreprocessor, ImageTextPreprocessor)
}


def save_preprocessor(preprocessor: Preprocessor, folder: Path) -> None:
    """Write ``preprocess.json`` (and ``tokenizer.json`` for text) into ``folder``, atomically."""
    if preprocessor.tokenizer is not None:
        save_tokenizer(preprocessor.tokenizer, folder)
    write_json(Path(folder) / FILE, {"kind": preprocessor.kind, **preprocessor.to_json()})


def load_preprocessor(folder: Path) -> Preprocessor:
    """The preprocessor ``save_preprocessor`` wrote into ``folder``."""
    path = Path(folder) / FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        cls = KINDS[spec.pop("kind")]
        if hasattr(cls, "from_json"):  # a preprocessor that reads its own fields (registered by its module)
            return cls.from_json(spec)
    except FileNotFoundError:
        raise DataError(f"{path}: missing (the run predates saved preprocessing; its dataset is needed).") from None
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a preprocessing file deepatlas wrote ({exc}).") from None
    if issubclass(cls, _Tokenizing):
        spec["tokenizer"] = load_tokenizer(Path(folder) / "tokenizer.json")
    if cls is ImagePreprocessor:
        spec["mean"], spec["std"] = tuple(spec["mean"]), tuple(spec["std"])
    try:
        return cls(**spec)
    except TypeError as exc:
        raise DataError(f"{path}: unexpected fields ({exc}).") from None
