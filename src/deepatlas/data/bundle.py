"""The data-bundle contract: what the engine and the api may call on a dataset, and the shared pieces.

A bundle is what ``load_dataset`` returns. The engine needs only batch counts and
batches; the api also reads ``meta`` (classes, channels, vocabulary...), records the
``fingerprints`` of the splits, saves what a trained model needs with the run
(``save``: the tokenizer, the fitted preprocessing) and turns raw user inputs into
model inputs (``preprocessor``). :class:`DataBundle` writes the contract down as a
``typing.Protocol``; :class:`SplitBundle` gives the usual implementation of the
split-related half, and :class:`ShuffledBatches` the seeded epoch order, :class:`TensorPairs` +
:class:`PairBatching` the batching of splits held as two aligned tensors (inputs, targets) that most sources share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ..errors import DataError
from ..io import derive_seed
from .preprocess import Identity, Preprocessor, save_preprocessor


@runtime_checkable
class DataBundle(Protocol):
    """What every dataset offers the engine (batches) and the api (meta, fingerprints, preprocessing)."""

    name: str
    meta: Mapping[str, Any]

    def num_batches(self, split: str = "train") -> int:
        """Micro-batches of ``split`` per epoch (training drops an incomplete last batch)."""
        ...

    def train_batches(self, epoch: int, seed: int, device: torch.device, start: int = 0) -> Iterator[Any]:
        """The training batches of ``epoch`` from batch ``start`` on: a pure function of (seed, epoch, batch)."""
        ...

    def eval_batches(self, split: str, device: torch.device) -> Iterator[Any]:
        """Every example of ``split`` once, in order, without augmentation."""
        ...

    def split(self, name: str) -> Any:
        """The split ``name`` (train, val, test): it has ``len`` and ``fingerprint()``."""
        ...

    def fingerprints(self, names: tuple[str, ...] = ("train", "val")) -> dict[str, str]:
        """sha256 of each split's content, to tell when data changed under a run."""
        ...

    def save(self, folder: Path) -> None:
        """Keep what a trained model needs with its run: the fitted preprocessing (and tokenizer)."""
        ...

    def preprocessor(self) -> Preprocessor:
        """The fitted transform of raw user inputs (pixels, files, strings, graphs) into model inputs."""
        ...


class SplitBundle:
    """Bundles keep ``self.splits`` (name -> split with ``fingerprint()``) and ``self.name``."""

    name: str
    splits: dict[str, Any]

    def split(self, name: str) -> Any:
        if name not in self.splits:
            raise DataError(f"{self.name}: no split {name!r} (train, val, test).")
        return self.splits[name]

    def fingerprints(self, names: tuple[str, ...] = ("train", "val")) -> dict[str, str]:
        return {n: self.split(n).fingerprint() for n in names}

    def preprocessor(self) -> Preprocessor:
        """Raw inputs are already model inputs (e.g. a :class:`~deepatlas.data.graph.Graph`)."""
        return Identity()

    def preprocess(self, raw: Any) -> Any:
        """Raw user inputs -> model inputs, with the preprocessing fitted on this data."""
        return self.preprocessor()(raw)

    def save(self, folder: Path) -> None:
        save_preprocessor(self.preprocessor(), folder)


class TensorPairs:
    """A split held as two aligned tensors: inputs (N, ...) and targets (N, ...).

    ``dtypes`` are the byte layouts hashed by ``fingerprint`` (kept per source so that
    the fingerprints runs recorded stay valid).
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, dtypes: tuple[str, str] = ("<i4", "<i4")) -> None:
        self.inputs, self.targets, self.dtypes = inputs, targets, dtypes
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(self.inputs.numpy().astype(self.dtypes[0]).tobytes())
            h.update(self.targets.numpy().astype(self.dtypes[1]).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class ShuffledBatches(SplitBundle):
    """Batch counts and the seeded order of an epoch, for splits of examples; ``config`` has batch sizes."""

    config: Any

    def num_batches(self, split: str = "train") -> int:
        """Micro-batches per epoch (training drops the last incomplete batch)."""
        n = len(self.split(split))
        if split == "train":
            return max(1, n // self.config.batch_size)
        return -(-n // self.config.eval_batch_size)

    def epoch_index(self, epoch: int, seed: int, start: int = 0) -> list[torch.Tensor]:
        """The training examples of each batch of ``epoch`` from batch ``start`` on: a fresh permutation per
        (seed, epoch), so that a run resumed mid-epoch sees exactly the batches it would have seen."""
        n = len(self.splits["train"])
        bs = min(self.config.batch_size, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch)))
        return list(order[: self.num_batches() * bs].split(bs))[start:]


class PairBatching(ShuffledBatches):
    """Seeded, resumable batching of :class:`TensorPairs` splits."""

    splits: dict[str, TensorPairs]

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data = self.splits["train"]
        for idx in self.epoch_index(epoch, seed, start):
            yield data.inputs[idx].to(device), data.targets[idx].to(device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data = self.split(split)
        for lo in range(0, len(data), self.config.eval_batch_size):
            hi = lo + self.config.eval_batch_size
            yield data.inputs[lo:hi].to(device), data.targets[lo:hi].to(device)
