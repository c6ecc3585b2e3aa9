"""Evaluation beyond a task's own metrics: drawing images from generative runs and scoring them.

``generate_images`` draws any number of images from a VAE, GAN or diffusion run through the
task's ``sample`` (one place for every generative family), in batches, deterministically in a
seed. ``sample_quality`` scores them against real images with the fixed feature network of
:mod:`deepatlas.metrics.generative` (Frechet distance, the Inception-Score analogue, class
coverage, and the real-vs-real distance as the calibration floor). ``export_feature_network``
is how a version of that network is made from a trained run.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data.bundle import DataBundle
from .tasks.base import Task

log = logging.getLogger(__name__)


@torch.no_grad()
def generate_images(
    model: nn.Module, task: Task, labels: torch.Tensor | None, n: int, *, steps: int | None = None, seed: int = 0,
    batch_size: int = 500, progress: bool = False,
) -> torch.Tensor:
    """``n`` images in [0, 1] (CPU), ``batch_size`` at a time; deterministic in ``seed``."""
    from .engine.progress import track
    from .errors import ConfigError

    if not task.can("sample"):
        raise task.cannot("sample")
    if steps is not None and not task.can("sample-steps"):
        raise ConfigError(f"--steps: only diffusion runs take sampling steps (this is a {type(task).__name__} run).")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    starts = range(0, n, batch_size)
    for start in track(starts, "generating", total=len(starts), enabled=progress):
        m = min(batch_size, n - start)
        y = None if labels is None else labels[start: start + m].to(device)
        chunks.append(task.sample(model, m, y, generator=generator, steps=steps).float().cpu().clamp(0, 1))
    return torch.cat(chunks)


def real_pixels(split: Any, n: int, seed: int) -> torch.Tensor:
    """``n`` images of an image split drawn without replacement (fixed by ``seed``), in [0, 1]."""
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    part = split.subset(index)
    images = part.images if part.images is not None else torch.stack([part.decode(f) for f in part.files])
    return images.float() / part.scale


def sample_quality(
    folder: Path, model: nn.Module, task: Task, data: DataBundle, split: str, samples: int, steps: int | None,
) -> tuple[dict[str, Any], list[str]]:
    """FD / IS / coverage of ``samples`` generated images against as many real ones of ``split``, with the
    real-train-vs-``split`` distance as calibration; a PNG grid of the first generated images in ``folder``."""
    from .metrics.generative import FEATURE_INPUT, load_feature_network
    from .metrics.generative import sample_quality as score
    from .report.plots import save_image_grid

    meta = data.meta
    shape = (meta.get("in_channels"), meta.get("input_size"), meta.get("input_size"))
    labels = task.sample_labels(model, samples)
    images = generate_images(model, task, labels, samples, steps=steps, seed=0, progress=True)
    nrow = model.config.num_classes if labels is not None else None
    figures = [str(save_image_grid(images[:100], folder / f"samples-eval-{split}.png", nrow=nrow))]
    if shape != FEATURE_INPUT:
        log.info("sample-quality metrics skipped: the feature network takes %s images, this data has %s", FEATURE_INPUT, shape)
        return {}, figures
    net = load_feature_network()
    real = real_pixels(data.split(split), samples, seed=1)
    reference = real_pixels(data.split("train"), samples, seed=2) if split != "train" else None
    quality = score(net, images, real, reference)
    share = quality.pop("class_share")
    names = meta.get("class_names") or [str(i) for i in range(len(share))]
    metrics = {k: v for k, v in quality.items() if isinstance(v, (int, float))}
    result = {"metrics": metrics, "class_share": dict(zip(names, share, strict=True)), "feature_network": quality["feature_network"]}
    return result, figures


def export_feature_network(run_ref: str | Path, path: str | Path) -> str:
    """Write a trained featurenet run's weights (best checkpoint) as a safetensors file; returns its sha256.

    How a version is made: ``deepatlas train featurenet-fashion-mnist``, then this function onto
    ``metrics.generative.FEATURE_WEIGHTS`` and the printed digest into ``FEATURE_SHA256``.
    """
    from safetensors.torch import save_file

    from .build import load_trained_model, run_task
    from .io import atomic_path
    from .metrics.generative import FEATURE_NETWORK
    from .tracking import RunStore

    run = RunStore().open(run_ref)
    model, *_ = load_trained_model(run, run.config, run_task(run), "best")
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata={"name": FEATURE_NETWORK, "run": run.id})
    return hashlib.sha256(path.read_bytes()).hexdigest()
