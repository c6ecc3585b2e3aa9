"""Image classification data: splits, deterministic batching, augmentation, fingerprints.

Every image dataset (built-in or the user's own folder) ends up as an
:class:`ImageData`: a training split, a validation split carved from the
training set with ``data.split_seed`` (stratified), and a test split that is
only read when asked for (by evaluation). Batches are produced from a seeded
permutation per epoch, and augmentation randomness is seeded per batch, so a
run resumed mid-epoch sees exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from ..io import derive_seed
from ..schema import option
from . import augment as A
from . import transforms as T
from .bundle import ShuffledBatches
from .preprocess import ImagePreprocessor

log = logging.getLogger(__name__)

# Above this many decoded bytes, an image folder is read from disk batch by batch.
IN_MEMORY_LIMIT = int(os.environ.get("DEEPATLAS_IN_MEMORY_MB", "4096")) << 20


@dataclass(frozen=True)
class ImageOptions:
    """Options of every image dataset."""

    normalize: bool = option(True, "standardise each channel with the training split's mean and std")
    crop_padding: int = option(0, "augment: random crop after zero-padding by this many pixels", low=0)
    hflip: bool = option(False, "augment: random horizontal flip")
    vflip: bool = option(False, "augment: random vertical flip")
    crop_scale_min: float = option(
        1.0, "augment: random resized crop, smallest area fraction (Szegedy et al. 2015: 0.08; 1: off)", low=0.0, high=1.0
    )
    rotation: float = option(0.0, "augment: random rotation by up to this many degrees either way (0: off)", low=0.0, high=180.0)
    zoom: float = option(0.0, "augment: random scaling by s ~ U[1 - zoom, 1 + zoom] about the centre (0: off)", low=0.0, high=0.9)
    brightness: float = option(0.0, "augment: brightness jitter, x * U[1 - b, 1 + b] (0: off)", low=0.0, high=1.0)
    contrast: float = option(0.0, "augment: contrast jitter about each image's mean, U[1 - c, 1 + c] (0: off)", low=0.0, high=1.0)
    saturation: float = option(0.0, "augment: saturation jitter of RGB images, U[1 - s, 1 + s] (0: off)", low=0.0, high=1.0)
    jitter_prob: float = option(1.0, "augment: probability of each colour jitter per image", low=0.0, high=1.0)
    resize: Optional[int] = option(None, "resize images to this side in pixels (null: keep)", low=1)


@dataclass(frozen=True)
class ImageFolderOptions(ImageOptions):
    """Options of a folder of images with one sub-folder per class."""

    path: Optional[str] = option(None, "folder with one sub-folder per class (or train/ and test/ inside)")
    channels: int = option(3, "1: greyscale, 3: RGB", low=1, high=3)
    test_fraction: float = option(
        0.2, "without a test/ sub-folder: fraction held out as the test split (fixed seed)", low=0.0, high=0.9
    )


def augment_batch(x: torch.Tensor, generator: torch.Generator, options: ImageOptions) -> torch.Tensor:
    """The training augmentation of ``options`` on a batch of images in [0, 1], (B, C, H, W), on its device.

    The order: padded crop, horizontal flip (the draws of runs before the other options existed), random
    resized crop, vertical flip, rotation and scaling, brightness/contrast, saturation. An option that is
    off draws nothing, so adding one never changes the batches of a run that leaves it off.
    """
    o = options
    x = T.random_crop(x, o.crop_padding, generator)
    if o.hflip:
        x = T.random_hflip(x, generator)
    if o.crop_scale_min < 1.0:
        x = A.random_resized_crop(x, generator, (o.crop_scale_min, 1.0))
    if o.vflip:
        x = T.random_vflip(x, generator)
    if o.rotation > 0 or o.zoom > 0:
        x = A.random_affine(x, generator, o.rotation, o.zoom)
    if o.jitter_prob > 0 and (o.brightness > 0 or o.contrast > 0):
        x = A.brightness_contrast(x, generator, o.brightness, o.contrast, o.jitter_prob)
    if o.jitter_prob > 0 and o.saturation > 0 and x.shape[1] == 3:
        x = A.random_saturation(x, generator, o.saturation, o.jitter_prob)
    return x


class ImageSplit:
    """Labelled images, either decoded in memory or as files decoded on demand.

    ``images`` is uint8 (N, C, H, W); pixel values are divided by ``scale`` to
    get [0, 1]. File-backed splits hold ``files`` and a ``decode`` function.
    """

    def __init__(
        self,
        labels: torch.Tensor,
        images: torch.Tensor | None = None,
        scale: float = 255.0,
        files: list[Path] | None = None,
        decode: Callable[[Path], torch.Tensor] | None = None,
    ) -> None:
        if (images is None) == (files is None):
            raise ValueError("an ImageSplit holds either images or files")
        self.labels = labels.long()
        self.images = images
        self.scale = scale
        self.files = files
        self.decode = decode
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def subset(self, index: np.ndarray | torch.Tensor) -> ImageSplit:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        if self.images is not None:
            return ImageSplit(self.labels[index], self.images[index], self.scale)
        files = [self.files[i] for i in index.tolist()]  # type: ignore[index]
        return ImageSplit(self.labels[index], files=files, decode=self.decode, scale=self.scale)

    def fingerprint(self) -> str:
        """sha256 of the split's content (images and labels, in order)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(self.labels.numpy().astype("<i8").tobytes())
            if self.images is not None:
                h.update(repr((tuple(self.images.shape), self.scale)).encode())
                h.update(self.images.contiguous().numpy().tobytes())
            else:
                for path in self.files:  # type: ignore[union-attr]
                    h.update(Path(path).read_bytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class _FileImages(Dataset):
    def __init__(self, split: ImageSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split.decode(self.split.files[i]), self.split.labels[i]  # type: ignore[index,misc]


def show_columns(header: list[str], limit: int = 12) -> str:
    """A CSV header for a one-line error: at most ``limit`` names, quoted where they hold commas or newlines."""
    shown = ", ".join(n if n.isprintable() and "," not in n else repr(n) for n in (h[:40] for h in header[:limit]))
    return (shown + (", ..." if len(header) > limit else "")) or "none"


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, stratify: bool = True, where: str = "the data"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out), the held-out part stratified by label (where it can be) and seeded."""
    index = np.arange(len(labels))
    if fraction <= 0:
        return np.random.default_rng(seed).permutation(index), index[:0]
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    strata = labels if stratify and len(labels) and counts[counts > 0].min() >= 2 else None
    try:
        kept, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=strata)
    except ValueError:
        if strata is None:
            raise DataError(
                f"{where}: {len(labels)} examples are too few to hold out a fraction {fraction} of them "
                "(add examples, or lower data.val_fraction / data.test_fraction)."
            ) from None
        # too few held-out examples to hold one of each class: hold out unstratified instead
        return stratified_split(labels, fraction, seed, stratify=False, where=where)
    return np.asarray(kept), np.asarray(held)


class ImageData(ShuffledBatches):
    """Train/validation/test image splits with deterministic, resumable batching."""

    def __init__(
        self,
        name: str,
        train: ImageSplit,
        test: Callable[[], ImageSplit],
        class_names: list[str],
        config: Any,
    ) -> None:
        opts: ImageOptions = config.options
        self.name, self.config, self.options = name, config, opts
        keep, held = stratified_split(train.labels.numpy(), config.val_fraction, config.split_seed, where=name)
        if config.limit is not None:
            keep = keep[: config.limit]
        self.splits: dict[str, ImageSplit] = {"train": train.subset(keep), "val": train.subset(held)}
        self._load_test = test
        self.class_names = class_names
        first = self._peek(self.splits["train"])
        channels, side = int(first.shape[0]), int(first.shape[-1])
        if opts.normalize:
            self.mean, self.std = self._channel_stats(self.splits["train"], channels)
        else:
            self.mean, self.std = torch.zeros(channels), torch.ones(channels)
        self.meta = {
            "num_classes": len(class_names),
            "in_channels": channels,
            "input_size": side,
            "class_names": class_names,
            "mean": [round(v, 6) for v in self.mean.tolist()],
            "std": [round(v, 6) for v in self.std.tolist()],
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }
        self._device_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # ----------------------------------------------------------------- splits

    def split(self, name: str) -> ImageSplit:
        if name == "test" and "test" not in self.splits:
            self.splits["test"] = self._load_test()
        if name not in self.splits:
            raise DataError(f"{self.name}: no split {name!r} (train, val, test).")
        return self.splits[name]

    def preprocessor(self) -> ImagePreprocessor:
        """Raw pixels, files or PIL images -> the normalised input of this data's evaluation batches."""
        return ImagePreprocessor(
            int(self.meta["in_channels"]), int(self.meta["input_size"]), float(self.splits["train"].scale),
            tuple(self.mean.tolist()), tuple(self.std.tolist()),
        )

    @staticmethod
    def _peek(split: ImageSplit) -> torch.Tensor:
        if len(split) == 0:
            raise DataError("the training split is empty (check data.val_fraction and data.limit).")
        return split.images[0] if split.images is not None else split.decode(split.files[0])  # type: ignore[index,misc]

    def _channel_stats(self, split: ImageSplit, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(channels, dtype=torch.float64)
        total_sq = torch.zeros(channels, dtype=torch.float64)
        count = 0
        for x, _ in self._raw_batches(split, torch.arange(len(split)).split(4096), torch.device("cpu")):
            x = x.double() / split.scale
            total += x.sum(dim=(0, 2, 3))
            total_sq += (x * x).sum(dim=(0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
        return mean.float(), std.float()

    # ----------------------------------------------------------------- batching

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Augmented, normalised training batches of ``epoch``, from batch ``start`` on."""
        split = self.splits["train"]
        index = self.epoch_index(epoch, seed, start)
        for i, (x, y) in enumerate(self._raw_batches(split, index, device), start=start):
            gen = torch.Generator().manual_seed(derive_seed(seed, "augment", epoch, i))
            yield self._prepare(x, split.scale, gen), y

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised batches of ``split`` in order, without augmentation."""
        data = self.split(split)
        index = torch.arange(len(data)).split(self.config.eval_batch_size)
        for x, y in self._raw_batches(data, index, device):
            yield self._prepare(x, data.scale, None), y

    def _prepare(self, x: torch.Tensor, scale: float, gen: torch.Generator | None) -> torch.Tensor:
        x = x.float().div_(scale)
        if gen is not None:
            x = augment_batch(x, gen, self.options)
        return T.normalize(x, self.mean, self.std)

    def _raw_batches(
        self, split: ImageSplit, index: list[torch.Tensor] | tuple[torch.Tensor, ...], device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 image batches and labels on ``device`` for each index tensor."""
        if split.images is not None:
            images, labels = self._on_device(split, device)
            for idx in index:
                idx = idx.to(images.device)
                yield images[idx], labels[idx]
            return
        workers = self.config.num_workers
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        loader = DataLoader(
            _FileImages(split),
            batch_sampler=[idx.tolist() for idx in index],
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def _on_device(self, split: ImageSplit, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """In-memory images are copied to an accelerator once, then indexed there."""
        assert split.images is not None
        if device.type == "cpu":
            return split.images, split.labels
        key = (id(split), str(device))
        if key not in self._device_cache:
            self._device_cache[key] = (split.images.to(device), split.labels.to(device))
        return self._device_cache[key]
