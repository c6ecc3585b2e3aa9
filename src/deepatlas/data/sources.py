"""Built-in image datasets and the bring-your-own image folder reader."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from . import transforms as T
from .download import cache_dir, check_sha256, data_roots, download, find_file, read_maybe_gzip
from .images import IN_MEMORY_LIMIT, ImageData, ImageSplit, stratified_split

log = logging.getLogger(__name__)


def _resized(split: ImageSplit, size: int | None) -> ImageSplit:
    if size is None or split.images is None:
        return split
    return ImageSplit(split.labels, T.resize(split.images, size), split.scale)


# --------------------------------------------------------------------------- digits


def load_digits(config: Any, state_dir: Path | None = None) -> ImageData:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI), embedded: no download.

    There is no official test split: a fixed stratified 20% (seed 0) is held
    out, the same for every run, and only read by evaluation.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = torch.from_numpy(bunch.images.astype(np.uint8))[:, None]  # (N, 1, 8, 8), values 0..16
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    full = ImageSplit(labels, images, scale=16.0)
    if config.options.resize:
        full = ImageSplit(labels, T.resize((images.float() * (255 / 16)).round().to(torch.uint8), config.options.resize))
    keep, test = stratified_split(labels.numpy(), 0.2, seed=0)
    names = [str(i) for i in range(10)]
    return ImageData("digits", full.subset(np.sort(keep)), lambda: full.subset(np.sort(test)), names, config)


# --------------------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# sha256 of the decompressed IDX files (Xiao, Rasul & Vollgraf, 2017).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def parse_idx(content: bytes, path: Path) -> np.ndarray:
    """Parse an IDX file (LeCun's MNIST format): magic, dimensions, then unsigned bytes."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number {content[:4].hex()}).")
    ndim = content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{path}: IDX header is truncated.")
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    # exact integers: numpy's product overflows, and an empty array with huge dimensions cannot be shaped
    if math.prod(d for d in shape if d) >= 2**40:
        raise DataError(f"{path}: IDX header has implausible dimensions {shape}; the file is damaged.")
    expected = header + math.prod(shape)
    if len(content) != expected:
        raise DataError(f"{path}: IDX file has {len(content)} bytes, its header {shape} needs {expected}.")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def fashion_mnist_file(name: str, root: str | None) -> np.ndarray:
    """Find (or download), verify and parse one Fashion-MNIST IDX file."""
    folders = []
    for base in data_roots(root):
        folders += [base / "fashion-mnist", base / "fashion_mnist", base]
    folders += [FASHION_MNIST_SYSTEM_DIR, cache_dir() / "fashion-mnist"]
    path = find_file([name, name + ".gz"], folders)
    if path is None:
        path = download(
            FASHION_MNIST_URL + name + ".gz",
            cache_dir() / "fashion-mnist" / (name + ".gz"),
            sha256_of_content=FASHION_MNIST_SHA256[name],
        )
    content = read_maybe_gzip(path)
    check_sha256(path, content, FASHION_MNIST_SHA256[name])
    return parse_idx(content, path)


def _fashion_split(prefix: str, root: str | None, resize: int | None) -> ImageSplit:
    images = fashion_mnist_file(f"{prefix}-images-idx3-ubyte", root)
    labels = fashion_mnist_file(f"{prefix}-labels-idx1-ubyte", root)
    if len(images) != len(labels):
        raise DataError(f"fashion-mnist {prefix}: {len(images)} images but {len(labels)} labels.")
    split = ImageSplit(torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(images.copy())[:, None])
    return _resized(split, resize)


def load_fashion_mnist(config: Any, state_dir: Path | None = None) -> ImageData:
    """Fashion-MNIST (Xiao et al., 2017): 60,000 training and 10,000 test 28x28 greyscale images, 10 classes."""
    resize = config.options.resize
    train = _fashion_split("train", config.root, resize)
    return ImageData(
        "fashion-mnist", train, lambda: _fashion_split("t10k", config.root, resize), FASHION_MNIST_CLASSES, config
    )


# --------------------------------------------------------------------------- image folders

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _class_folders(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _check_test_classes(folder: Path, classes: list[str]) -> None:
    """A class folder of ``folder`` (test/) must be one of the training classes: checked by name, cheaply."""
    unknown = sorted(set(_class_folders(folder)) - set(classes))
    if unknown:
        raise DataError(
            f"{folder}: class folders {unknown} are not in the training classes {classes} "
            f"(add them to {folder.parent / 'train'} or remove them)."
        )


def _scan(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """Image files and labels under ``folder/<class>/``; without ``classes`` the folders found are the classes."""
    training = classes is None
    if classes is None:
        classes = _class_folders(folder)
    else:
        _check_test_classes(folder, classes)
    files, labels = [], []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        found = [p for p in sorted(class_dir.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if training and not found:
            raise DataError(f"{class_dir}: class folder without PNG/JPEG images (add images or remove the folder).")
        files += found
        labels += [label] * len(found)
    return files, labels, classes


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class _Decoder:
    """Read an image file to uint8 (C, H, W) at a fixed size; picklable for loader workers."""

    def __init__(self, channels: int, size: int | None) -> None:
        self.channels, self.size = channels, size

    def __call__(self, path: Path) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
                if self.size is not None and img.size != (self.size, self.size):
                    img = img.resize((self.size, self.size), Image.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"{path}: cannot decode image ({_one_line(exc)}).") from None
        except Exception as exc:  # PIL's decoders fail on damaged files in many ways
            raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {_one_line(exc)}).") from None
        if self.size is None and array.shape[:2] != getattr(self, "_first_shape", array.shape[:2]):
            raise DataError(
                f"{path}: image is {array.shape[1]}x{array.shape[0]} but earlier images differ; "
                "set data.resize to give all images one size."
            )
        self._first_shape = array.shape[:2]
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (C, H, W)


def _folder_split(files: list[Path], labels: list[int], decode: _Decoder) -> ImageSplit:
    if not files:
        raise DataError("no PNG/JPEG images found.")
    split = ImageSplit(torch.tensor(labels), files=files, decode=decode)
    first = decode(files[0])
    if first.numel() * len(files) > IN_MEMORY_LIMIT:
        log.info("image folder is large: decoding from disk batch by batch")
        return split
    images = torch.stack([decode(f) for f in files])
    return ImageSplit(split.labels, images)


def load_image_folder(config: Any, state_dir: Path | None = None) -> ImageData:
    """The user's images: ``path/<class>/*.png`` (or ``path/train/<class>`` and ``path/test/<class>``)."""
    opts = config.options
    if not opts.path:
        raise DataError("data.path: image-folder needs the folder of images (data.path=/path/to/images).")
    root = Path(opts.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path: {root} is not a folder.")
    decode = _Decoder(opts.channels, opts.resize)
    if (root / "train").is_dir():
        files, labels, classes = _scan(root / "train")
        if not files:
            raise DataError(f"{root / 'train'}: no PNG/JPEG images in class sub-folders.")
        test_dir = root / "test"
        if test_dir.is_dir():
            _check_test_classes(test_dir, classes)  # before training, although test images are read at the end

        def test() -> ImageSplit:
            if not test_dir.is_dir():
                raise DataError(f"{root}: has train/ but no test/ folder to evaluate on.")
            t_files, t_labels, _ = _scan(test_dir, classes)
            return _folder_split(t_files, t_labels, decode)

        return ImageData(f"image-folder:{root}", _folder_split(files, labels, decode), test, classes, config)
    files, labels, classes = _scan(root)
    if not files:
        raise DataError(f"{root}: no PNG/JPEG images in class sub-folders (expected {root}/<class>/*.png).")
    full = _folder_split(files, labels, decode)
    keep, held = stratified_split(np.asarray(labels), opts.test_fraction, seed=0, where=str(root))
    return ImageData(
        f"image-folder:{root}", full.subset(np.sort(keep)), lambda: full.subset(np.sort(held)), classes, config
    )
