"""``deepatlas bench data``: images per second our input pipelines deliver against what each model consumes.

Pipelines (the training code paths, one process, on the training device):

- ``fashion-mnist crop+flip``: :class:`deepatlas.data.images.ImageData` over the real Fashion-MNIST
  training split as the image recipes load it (``resnet20-fashion-mnist``'s data section: batches of
  128 from a seeded permutation, random crop after 2-pixel zero padding, horizontal flip,
  per-channel standardisation);
- ``cifar-style crop+flip``: the same batching over 10,000 random uint8 3 x 32 x 32 images (CIFAR-10's
  shape; the data itself is not on these machines), 4-pixel padding as in He et al.;
- ``fashion-mnist two views``: batches of 256 of Fashion-MNIST in [0, 1] with SimCLR's two-view
  augmentation (data/augment.py: random resized crop, flip, brightness/contrast jitter, Gaussian
  blur), as the ``ssl`` task draws them for ``simclr-fashion-mnist``.

Each pipeline is timed per batch (``next`` on an endless iterator over epochs) with bench.common's
alternating rounds. The consumers are the models those recipes train, timed as training steps
(forward, loss, backward, optimizer step) at our defaults (bench.common.our_defaults) on batches of
the same shape: ResNet-20, the ViT (``vit-mini`` with 7x7 patches) and the MLP (2 x 1024 GELU) on
Fashion-MNIST, ResNet-20 on the CIFAR shape, SimCLR (ResNet-20 encoder, both views) on the two views.
The ratio delivered / consumed is the headroom of the pipeline: the goal is at least 5x, so that
data never waits on the model nor the other way round by more than a fifth.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import create_model
from .common import Build, Contender, Rounds, Setup, alternate, compare, defaults_for

GOAL = 5.0

# consumer -> (pipeline it eats, registered model, its overrides, batch size)
CONSUMERS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "resnet20": ("fashion-mnist crop+flip", "resnet20", {"in_channels": 1, "input_size": 28}, 128),
    "vit": ("fashion-mnist crop+flip", "vit-mini", {"patch_size": 7, "dropout": 0.0}, 128),
    "mlp": ("fashion-mnist crop+flip", "mlp", {"depth": 2, "width": 1024, "activation": "gelu", "dropout": 0.3}, 128),
    "resnet20 (cifar shape)": ("cifar-style crop+flip", "resnet20", {}, 128),
    "simclr": ("fashion-mnist two views", "simclr", {"encoder": "resnet20"}, 256),
}


@dataclass(frozen=True)
class DataBench(Rounds):
    consumers: tuple[str, ...] = tuple(CONSUMERS)
    root: str | None = None  # Fashion-MNIST folder (default: $DEEPATLAS_DATA_DIR, then system paths)
    limit: int | None = None  # training images used (None: the whole split)
    cifar_images: int = 10_000
    batch_size: int | None = None  # every pipeline's and consumer's batch (None: the recipes')


def _endless(batches: Callable[[int], Iterator[Any]]) -> Callable[[], Any]:
    """``next`` over epoch 0, 1, 2, ... of ``batches(epoch)``."""
    stream = itertools.chain.from_iterable(batches(epoch) for epoch in itertools.count())
    return lambda: next(stream)


def _fashion(b: DataBench, batch_size: int, **data: Any) -> Any:
    from ..config import load_recipe
    from ..data import load_dataset

    overrides = [f"data.batch_size={batch_size}", *(f"data.{k}={v}" for k, v in data.items())]
    if b.root:
        overrides.append(f"data.root={b.root}")
    if b.limit:
        overrides.append(f"data.limit={b.limit}")
    return load_dataset(load_recipe("resnet20-fashion-mnist", overrides).data)


def _cifar_style(b: DataBench) -> Any:
    from ..config import DataConfig
    from ..data.images import ImageData, ImageOptions, ImageSplit

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b.cifar_images, 3, 32, 32), generator=gen, dtype=torch.uint8)
    split = ImageSplit(torch.randint(0, 10, (b.cifar_images,), generator=gen), images)
    config = DataConfig(name="cifar-style", batch_size=b.batch_size or 128, options=ImageOptions(crop_padding=4, hflip=True))
    return ImageData("cifar-style", split, lambda: split, [str(i) for i in range(10)], config)


def pipelines(b: DataBench, names: set[str], device: torch.device) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (a call that delivers the next batch, images per batch)."""
    from ..data.augment import ViewOptions, two_views
    from ..io import derive_seed

    out: dict[str, tuple[Callable[[], Any], int]] = {}
    if "fashion-mnist crop+flip" in names:
        data = _fashion(b, b.batch_size or 128)
        out["fashion-mnist crop+flip"] = (_endless(lambda e: data.train_batches(e, 0, device)), b.batch_size or 128)
    if "cifar-style crop+flip" in names:
        cifar = _cifar_style(b)
        out["cifar-style crop+flip"] = (_endless(lambda e: cifar.train_batches(e, 0, device)), b.batch_size or 128)
    if "fashion-mnist two views" in names:
        plain = _fashion(b, b.batch_size or 256, normalize="false", crop_padding=0, hflip="false")
        views = ViewOptions()

        def two(epoch: int) -> Iterator[Any]:
            for i, (x, _) in enumerate(plain.train_batches(epoch, 0, device)):
                yield two_views(x, torch.Generator().manual_seed(derive_seed(0, "ssl-views", epoch, i)), views)

        out["fashion-mnist two views"] = (_endless(two), b.batch_size or 256)
    return out


def consumer_builder(name: str, device: torch.device, batch_size: int | None = None) -> tuple[Build, int]:
    """``build(side, setup, seed)`` of the consumer's training step on a fixed batch, and its batch size."""
    pipeline, registered, overrides, batch = CONSUMERS[name]
    batch = batch_size or batch
    shape = (batch, 3, 32, 32) if pipeline.startswith("cifar") else (batch, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(*shape, generator=gen).to(device)
    labels = torch.randint(0, 10, (batch,), generator=gen).to(device)

    def build(side: str, setup: Setup, seed: int) -> Contender:
        torch.manual_seed(seed)
        kwargs = dict(overrides)
        kwargs.update(in_channels=shape[1], input_size=shape[2])
        if registered != "simclr":
            kwargs["num_classes"] = 10
        m: nn.Module = create_model(registered, **kwargs).to(device).train()
        x = images
        if setup.channels_last:
            m, x = m.to(memory_format=torch.channels_last), images.contiguous(memory_format=torch.channels_last)
        if registered == "simclr":
            view_gen = torch.Generator().manual_seed(1)
            views = (x, x.flip(-1))  # the augmentation's cost is the pipeline's; the model sees two batches

            def loss(net: nn.Module) -> torch.Tensor:
                return net.ssl_loss(views, 0, view_gen)[0]
        else:
            def loss(net: nn.Module) -> torch.Tensor:
                return F.cross_entropy(net(x).float(), labels)

        return Contender(m, loss, torch.optim.AdamW(m.parameters(), lr=1e-3, fused=setup.fused))

    return build, batch


def run(bench: DataBench | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """One row per consumer: its pipeline's delivered images/s, the model's consumed images/s, the ratio."""
    b = bench or DataBench()
    device = device or torch.device("cpu")
    feeds = pipelines(b, {CONSUMERS[c][0] for c in b.consumers}, device)
    timing = alternate({name: call for name, (call, _) in feeds.items()}, calls=b.calls, rounds=b.rounds,
                       warmup=b.warmup, device=device)
    rows = []
    for consumer in b.consumers:
        pipeline = CONSUMERS[consumer][0]
        build, batch = consumer_builder(consumer, device, b.batch_size)
        setup = defaults_for(build, device, convolutional=consumer.startswith(("resnet", "simclr")))
        step = compare(build, {"ours": setup}, units=batch, unit="images", rounds=b, device=device)
        delivered = feeds[pipeline][1] / timing.median(pipeline)
        consumed = step["ours_images_per_s"]
        rows.append({
            "pipeline": pipeline, "consumer": consumer, "setup": setup.describe(), "delivered_images_per_s": delivered,
            "consumed_images_per_s": consumed, "ratio": delivered / consumed, "goal_met": delivered / consumed >= GOAL,
            "spread": max(timing.spread(pipeline), step["spread"]),
        })
    return rows
