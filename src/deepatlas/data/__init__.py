"""Datasets: built-in ones and readers for the user's own data.

``load_dataset(config.data)`` returns a data bundle with ``meta`` (classes,
channels, input size), ``train_batches``/``eval_batches`` and content
``fingerprints``. Registering a dataset: ``DATASETS.register(name, loader,
OptionsDataclass())``.
"""

from __future__ import annotations

from typing import Any

from ..registry import DATASETS
from .images import ImageData, ImageFolderOptions, ImageOptions, ImageSplit
from .sources import load_digits, load_fashion_mnist, load_image_folder

DATASETS.register(
    "digits", load_digits, ImageOptions(), family="image",
    doc="scikit-learn's 8x8 handwritten digits, 1,797 images, 10 classes (embedded)",
)
DATASETS.register(
    "fashion-mnist", load_fashion_mnist, ImageOptions(), family="image",
    doc="Fashion-MNIST, 70,000 28x28 greyscale images of clothing, 10 classes",
)
DATASETS.register(
    "image-folder", load_image_folder, ImageFolderOptions(), family="image",
    doc="your images: data.path=/folder with one sub-folder of PNG/JPEG files per class",
)


def load_dataset(config: Any) -> Any:
    """Load the dataset a :class:`~deepatlas.config.DataConfig` describes."""
    from ..config import DataConfig
    from ..schema import parse

    if isinstance(config, str):  # load_dataset("digits")
        config = parse(DataConfig, {"name": config}, "data")
        entry = DATASETS.get(config.name, "data.name")
        config = type(config)(**{**config.__dict__, "options": entry.config})
    entry = DATASETS.get(config.name, "data.name")
    return entry.factory(config)


__all__ = ["ImageData", "ImageFolderOptions", "ImageOptions", "ImageSplit", "load_dataset"]
