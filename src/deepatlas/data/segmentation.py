"""Semantic segmentation data: images with a label map each (one class id per pixel).

Two sources become a :class:`SegmentationData` bundle, whose batches are ``(images, masks)``:
normalised float images (B, C, H, W) and int64 label maps (B, H, W).

- ``shapes``: a synthetic demonstration set generated deterministically from ``data.seed``
  (the same seed gives the same bytes, on any machine): circles, squares and triangles of
  random size, rotation and colour, up to three per image and overlapping, on backgrounds of
  a colour gradient, a sinusoidal texture and Gaussian noise. Four classes per pixel:
  background, circle, square, triangle. Colour does not tell the classes apart; shape does.
  2,000 training and 500 test images of 64x64 by default.
- ``segmentation-folder``: your own data, ``path/images/*.png|jpg`` with a label map
  ``path/masks/<same stem>.png`` each (single-channel PNG, ``L`` or palette mode, whose values
  are the class ids 0..K-1, and optionally an ignore value such as 255); or
  ``path/train/{images,masks}`` and ``path/test/{images,masks}``.

Validation is a seeded fraction of the training images (``data.split_seed``); the test split is
read only when evaluated. Augmentation flips an image and its mask together, with a generator
seeded by (seed, epoch, batch), so a resumed run sees the same batches.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
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
from .preprocess import ImagePreprocessor

SHAPE_CLASSES = ["background", "circle", "square", "triangle"]


@dataclass(frozen=True)
class SegmentationOptions:
    """Options of every segmentation dataset."""

    normalize: bool = option(True, "standardise each channel with the training split's mean and std")
    hflip: bool = option(False, "augment: flip image and mask together left-right (seeded per batch)")
    vflip: bool = option(False, "augment: flip image and mask together upside down (seeded per batch)")


@dataclass(frozen=True)
class ShapesOptions(SegmentationOptions):
    """Options of the generated shapes set."""

    seed: int = option(0, "seed of the generated images: the same seed gives the same bytes")
    train_size: int = option(2000, "generated training images (validation is carved from them)", low=1)
    test_size: int = option(500, "generated test images (a stream of their own)", low=1)
    size: int = option(64, "image side in pixels", low=16)
    noise: float = option(0.06, "std of the Gaussian pixel noise, on the 0..1 scale", low=0.0, high=1.0)


@dataclass(frozen=True)
class SegmentationFolderOptions(SegmentationOptions):
    """Options of a folder of images and masks."""

    path: Optional[str] = option(None, "folder with images/ and masks/ (or train/ and test/ with both inside)")
    channels: int = option(3, "1: greyscale, 3: RGB", low=1, high=3)
    num_classes: Optional[int] = option(None, "classes per pixel (null: the largest training label + 1)", low=2)
    ignore_index: Optional[int] = option(
        None, "mask value of unlabelled pixels (e.g. 255): left out of the loss and the metrics", low=0, high=255,
    )
    resize: Optional[int] = option(None, "resize images (bilinear) and masks (nearest) to this side (null: keep)", low=1)
    test_fraction: float = option(
        0.2, "without a test/ sub-folder: fraction held out as the test split (fixed seed)", low=0.0, high=0.9
    )


class SegmentationSplit:
    """uint8 images (N, C, H, W) on the 0..255 scale and uint8 label maps (N, H, W)."""

    scale = 255.0

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"images {tuple(images.shape)} and masks {tuple(masks.shape)} do not align")
        self.images, self.masks = images, masks
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> SegmentationSplit:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return SegmentationSplit(self.images[index], self.masks[index])

    def fingerprint(self) -> str:
        """sha256 of the split's content (images and masks, in order)."""
        if self._fingerprint is None:
            h = hashlib.sha256(repr((tuple(self.images.shape), tuple(self.masks.shape))).encode())
            h.update(self.images.contiguous().numpy().tobytes())
            h.update(self.masks.contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class SegmentationData(ShuffledBatches):
    """Train/validation/test splits of images and label maps, with seeded, resumable batching."""

    def __init__(
        self, name: str, train: SegmentationSplit, test: Callable[[], SegmentationSplit], class_names: list[str],
        config: Any, ignore_index: int | None = None,
    ) -> None:
        self.name, self.config, self.options = name, config, config.options
        n = len(train)
        held_count = math.ceil(n * config.val_fraction) if config.val_fraction > 0 else 0
        if held_count >= n:
            raise DataError(f"{name}: {n} training images are too few to hold out data.val_fraction={config.val_fraction}.")
        order = np.random.default_rng(config.split_seed).permutation(n)
        keep, held = np.sort(order[held_count:]), np.sort(order[:held_count])
        if config.limit is not None:
            keep = keep[: config.limit]
        self.splits: dict[str, SegmentationSplit] = {"train": train.subset(keep), "val": train.subset(held)}
        self._load_test = test
        channels, side = int(train.images.shape[1]), int(train.images.shape[-1])
        if self.options.normalize:
            x = self.splits["train"].images.double() / train.scale
            self.mean, self.std = x.mean(dim=(0, 2, 3)).float(), x.std(dim=(0, 2, 3), correction=0).clamp_min(1e-6).float()
        else:
            self.mean, self.std = torch.zeros(channels), torch.ones(channels)
        labels = self.splits["train"].masks.flatten().long()
        pixels = torch.bincount(labels[labels != ignore_index] if ignore_index is not None else labels, minlength=len(class_names))
        self.meta = {
            "num_classes": len(class_names),
            "in_channels": channels,
            "input_size": side,
            "class_names": class_names,
            "ignore_index": ignore_index,
            "class_pixels": pixels[: len(class_names)].tolist(),
            "mean": [round(v, 6) for v in self.mean.tolist()],
            "std": [round(v, 6) for v in self.std.tolist()],
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def split(self, name: str) -> SegmentationSplit:
        if name == "test" and "test" not in self.splits:
            self.splits["test"] = self._load_test()
        return super().split(name)

    def preprocessor(self) -> ImagePreprocessor:
        """Raw pixels, files or PIL images -> the normalised input of this data's evaluation batches."""
        return ImagePreprocessor(
            int(self.meta["in_channels"]), int(self.meta["input_size"]), SegmentationSplit.scale,
            tuple(self.mean.tolist()), tuple(self.std.tolist()),
        )

    # ----------------------------------------------------------------- batching

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Jointly flipped, normalised training batches of ``epoch``, from batch ``start`` on."""
        data = self.splits["train"]
        for i, idx in enumerate(self.epoch_index(epoch, seed, start), start=start):
            gen = torch.Generator().manual_seed(derive_seed(seed, "augment", epoch, i))
            x, y = self._flip(data.images[idx].float().div_(data.scale), data.masks[idx].long(), gen)
            yield T.normalize(x, self.mean, self.std).to(device), y.to(device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised batches of ``split`` in order, without augmentation."""
        data = self.split(split)
        for lo in range(0, len(data), self.config.eval_batch_size):
            x = data.images[lo: lo + self.config.eval_batch_size].float().div_(data.scale)
            y = data.masks[lo: lo + self.config.eval_batch_size].long()
            yield T.normalize(x, self.mean, self.std).to(device), y.to(device)

    def _flip(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random flips of each image and its mask (a flip drawn per example and per axis)."""
        for on, axis in ((self.options.hflip, -1), (self.options.vflip, -2)):
            if on:
                flip = torch.rand(x.shape[0], generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(axis), x)
                y = torch.where(flip[:, None, None], y.flip(axis), y)
        return x, y


# --------------------------------------------------------------------------- the generated shapes


def _shape_mask(kind: int, cx: float, cy: float, r: float, angle: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Pixels inside a circle (1), square (2) or triangle (3) of about the same area (2.5 r^2), centred at (cx, cy)."""
    dx, dy = xx - cx, yy - cy
    if kind == 1:
        return dx * dx + dy * dy <= (0.9 * r) ** 2
    if kind == 2:
        u, v = np.cos(angle) * dx + np.sin(angle) * dy, -np.sin(angle) * dx + np.cos(angle) * dy
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r
    corners = [(1.4 * r * np.cos(angle + 2 * np.pi * k / 3), 1.4 * r * np.sin(angle + 2 * np.pi * k / 3)) for k in range(3)]
    sides = [(bx - ax) * (dy - ay) - (by - ay) * (dx - ax) for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True)]
    return (sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)  # the corners run anticlockwise


def generate_shapes(n: int, size: int, seed: int, noise: float = 0.06) -> SegmentationSplit:
    """``n`` images (n, 3, size, size) and label maps, a pure function of the arguments."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        low, high = rng.uniform(0.0, 1.0, 3), rng.uniform(0.0, 1.0, 3)
        direction = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(direction) * xx + np.sin(direction) * yy) / (size * 1.42) + 0.5  # 0..1 across the image
        frequency, phase, texture_angle = rng.uniform(0.15, 0.6), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
        texture = 0.12 * np.sin(frequency * (np.cos(texture_angle) * xx + np.sin(texture_angle) * yy) + phase)
        image = low + (high - low) * ramp[..., None] + texture[..., None]
        for _ in range(int(rng.integers(1, 4))):
            kind, r = int(rng.integers(1, 4)), rng.uniform(0.1, 0.2) * size
            cx, cy = rng.uniform(r, size - r, 2)
            inside = _shape_mask(kind, cx, cy, r, rng.uniform(0, 2 * np.pi), xx, yy)
            background = image[inside].mean(axis=0) if inside.any() else image.mean(axis=(0, 1))
            colour = rng.uniform(0.0, 1.0, 3)
            while np.abs(colour - background).max() < 0.35:  # visible against what it covers
                colour = rng.uniform(0.0, 1.0, 3)
            image[inside] = colour
            masks[i][inside] = kind
        image = image + rng.normal(0.0, noise, image.shape)
        images[i] = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return SegmentationSplit(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(masks))


def load_shapes(config: Any, state_dir: Path | None = None) -> SegmentationData:
    """The synthetic shapes set: training and test images from two seeded streams of ``data.seed``."""
    opts: ShapesOptions = config.options
    train = generate_shapes(opts.train_size, opts.size, derive_seed(opts.seed, "shapes", "train"), opts.noise)

    def test() -> SegmentationSplit:
        return generate_shapes(opts.test_size, opts.size, derive_seed(opts.seed, "shapes", "test"), opts.noise)

    return SegmentationData("shapes", train, test, list(SHAPE_CLASSES), config)


# --------------------------------------------------------------------------- your own images and masks


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(image, mask) files of ``folder/images`` and ``folder/masks``, matched by file stem."""
    from .sources import IMAGE_SUFFIXES

    images_dir, masks_dir = folder / "images", folder / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DataError(f"{folder}: no {d.name}/ folder (expected {folder}/images/*.png and {folder}/masks/*.png).")
    images = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{images_dir}: no PNG/JPEG images.")
    stems: dict[str, Path] = {}
    for p in images:
        if p.stem in stems:
            raise DataError(f"{p}: two images named {p.stem!r} ({stems[p.stem].name}); each mask must match one image.")
        stems[p.stem] = p
    masks = {p.stem: p for p in masks_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png"}
    for stem, image in stems.items():
        if stem not in masks:
            raise DataError(f"{image}: no mask {masks_dir / (stem + '.png')} (each image needs a PNG label map of the same name).")
    return [(image, masks[stem]) for stem, image in stems.items()]


def _read_mask(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16", "1"):
                raise DataError(
                    f"{path}: mask is a {img.mode} image; save label maps as single-channel (L or palette) PNGs "
                    "whose values are the class ids."
                )
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.NEAREST)  # never blend two class ids
            return np.asarray(img).astype(np.int64)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode mask ({' '.join(str(exc).split())}).") from None


def _read_split(pairs: list[tuple[Path, Path]], opts: SegmentationFolderOptions, classes: int | None) -> tuple[SegmentationSplit, int]:
    """Decoded images and masks, every mask checked against its image's size and the class count; the count."""
    from .sources import _Decoder

    decode = _Decoder(opts.channels, opts.resize)
    images, masks = [], []
    for image_path, mask_path in pairs:
        image, mask = decode(image_path), _read_mask(mask_path, opts.resize)
        if mask.shape != tuple(image.shape[-2:]):
            raise DataError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path.name} is "
                f"{image.shape[-1]}x{image.shape[-2]}."
            )
        images.append(image)
        masks.append(mask)
    labelled = [(m, m[m != opts.ignore_index] if opts.ignore_index is not None else m) for m in masks]
    found = max(int(values.max()) for _, values in labelled if values.size) + 1 if any(v.size for _, v in labelled) else 1
    limit = classes or opts.num_classes
    if limit is not None:
        for (_, mask_path), (_, values) in zip(pairs, labelled, strict=True):
            if values.size and int(values.max()) >= limit:
                ignore = f" or the ignore value {opts.ignore_index}" if opts.ignore_index is not None else ""
                raise DataError(
                    f"{mask_path}: label {int(values.max())} is not a class (0..{limit - 1}{ignore}); "
                    "set data.num_classes or data.ignore_index, or fix the mask."
                )
    count = limit if limit is not None else found
    if count > 255:
        where = next(path for (_, path), (_, values) in zip(pairs, labelled, strict=True) if values.size and values.max() == count - 1)
        raise DataError(
            f"{where}: label {count - 1} would make {count} classes, more than the 255 a label map holds; if {count - 1} "
            f"marks unlabelled pixels, set data.ignore_index={count - 1}."
        )
    if count < 2:
        raise DataError(f"{pairs[0][1].parent}: every mask holds class 0 only; segmentation needs at least two classes.")
    stacked = torch.from_numpy(np.stack(masks).astype(np.uint8))
    return SegmentationSplit(torch.stack(images), stacked), count


def load_segmentation_folder(config: Any, state_dir: Path | None = None) -> SegmentationData:
    """The user's images and masks: ``path/images`` + ``path/masks`` (or ``path/train/...`` and ``path/test/...``)."""
    opts: SegmentationFolderOptions = config.options
    if not opts.path:
        raise DataError("data.path: segmentation-folder needs the folder with images/ and masks/ (data.path=/path/to/data).")
    root = Path(opts.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path: {root} is not a folder.")
    if (root / "train").is_dir():
        train, classes = _read_split(_pairs(root / "train"), opts, None)

        def test() -> SegmentationSplit:
            if not (root / "test").is_dir():
                raise DataError(f"{root}: has train/ but no test/ folder to evaluate on.")
            return _read_split(_pairs(root / "test"), opts, classes)[0]
    else:
        full, classes = _read_split(_pairs(root), opts, None)
        n = len(full)
        held_count = math.ceil(n * opts.test_fraction) if opts.test_fraction > 0 else 0
        if held_count >= n:
            raise DataError(f"{root}: {n} images are too few to hold out data.test_fraction={opts.test_fraction}.")
        order = np.random.default_rng(0).permutation(n)
        train, held = full.subset(np.sort(order[held_count:])), full.subset(np.sort(order[:held_count]))

        def test() -> SegmentationSplit:
            return held
    names = [str(k) for k in range(classes)]
    return SegmentationData(f"segmentation-folder:{root}", train, test, names, config, opts.ignore_index)
