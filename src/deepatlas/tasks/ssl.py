"""Self-supervised representation learning: SimCLR, BYOL, MoCo v2 and MAE, judged by frozen probes.

The model decides the method (``model.name``: simclr, byol, moco, mae; see
:mod:`deepatlas.models.ssl`); this task feeds it views and evaluates what it learned.
Labels are never used for gradients.

Training: each batch of images in [0, 1] (recipes set ``data.normalize=false``) becomes two
augmented views (one for MAE) by :mod:`deepatlas.data.augment`, drawn from a generator
seeded with ``derive_seed(train seed, "ssl-views", step, micro-batch)``: the views are a pure
function of the optimizer step, so a resumed run sees the views it would have seen. The
validation loss uses views seeded by each batch's content, the same at every evaluation.

Evaluation of the frozen representation ``model.forward_features`` (the same protocol for
every method and for the baselines of ``scripts/reproduce_17_ssl.py``, see
:mod:`deepatlas.metrics.representation`): after training, ``calibrate`` extracts features of
the training split (no augmentation) and fits a logistic-regression probe (full-batch L-BFGS,
fixed budget); the test metrics are the probe's accuracy (``linear_probe``) and the accuracy
of a weighted k-NN vote over the training features (``knn``: k = 20, cosine, Wu et al. 2018).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from ..data.augment import ViewOptions, augment
from ..errors import ConfigError
from ..io import derive_seed
from ..metrics.representation import LinearProbe, extract_features, fit_linear_probe, knn_accuracy
from ..registry import TASKS
from ..schema import option
from .base import Evaluation, StepOutput, Task, accumulate


@dataclass(frozen=True)
class SSLConfig(ViewOptions):
    """The view augmentations (ViewOptions) and the frozen-feature evaluation."""

    probe_l2: float = option(1e-4, "linear probe: L2 penalty (l2 / 2) |W|^2 on standardised features", low=0.0)
    probe_iterations: int = option(200, "linear probe: L-BFGS iterations (a fixed budget)", low=1)
    probe_limit: Optional[int] = option(None, "fit probe and k-NN bank on the first N training images (null: all)", low=1)
    knn_k: int = option(20, "k-NN: neighbours k", low=1)
    knn_temperature: float = option(0.07, "k-NN: vote weight exp(cos / T)", low=1e-4)
    knn_weighted: bool = option(True, "k-NN: weighted vote (Wu et al. 2018); false: plain majority")


def _content_seed(x: torch.Tensor) -> int:
    return int((x.flatten(1)[:, :256].double().sum(1) * 1000).long().sum()) % (2**62)


class SSLTask(Task):
    """Views -> ``model.ssl_loss``; the test split scores the frozen features with a linear probe and k-NN."""

    monitor = ("loss", "min")
    directions: ClassVar[Mapping[str, str]] = {"loss": "min", "linear_probe": "max", "knn": "max"}
    data_kind: ClassVar[str] = "labelled"
    calibrates: ClassVar[bool] = True

    def __init__(self, config: SSLConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        mean, std = meta.get("mean"), meta.get("std")
        if mean is not None and (any(abs(m) > 0 for m in mean) or any(abs(s - 1) > 0 for s in std or [])):
            raise ConfigError(
                "data.normalize: the ssl task augments pixels in [0, 1] (brightness, contrast, blur); "
                "set data.normalize=false."
            )
        self.num_classes = int(meta.get("num_classes") or 0)
        self.step, self.micro, self.view_seed = 0, 0, None

    # ----------------------------------------------------------------- training

    def check_model(self, model: nn.Module) -> None:
        if not getattr(model, "ssl_learner", False):
            raise ConfigError(
                f"model.name: the ssl task trains a self-supervised model (simclr, byol, moco, mae), "
                f"not {type(model).__name__}."
            )

    def phases(self, step: int) -> tuple[str, ...]:
        self.micro = self.micro + 1 if step == self.step and self.view_seed is not None else 0
        self.step = step
        return ("main",)

    def views(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return tuple(augment(x, generator, self.config) for _ in range(int(model.n_views)))

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        if self.view_seed is None:
            self.view_seed = int(torch.initial_seed())  # train.seed: build() seeds torch with it
        gen = torch.Generator().manual_seed(derive_seed(self.view_seed, "ssl-views", self.step, self.micro))
        loss, logs = model.ssl_loss(self.views(model, batch[0], gen), self.step, gen)
        return StepOutput(loss, logs)

    def state_dict(self) -> dict[str, Any]:
        return {"view_seed": self.view_seed, "step": self.step, "micro": self.micro}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            self.view_seed, self.step, self.micro = state.get("view_seed"), int(state["step"]), int(state["micro"])

    # ----------------------------------------------------------------- validation

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x = batch[0]
        gen = torch.Generator().manual_seed(derive_seed("ssl-val", _content_seed(x)))
        loss, _ = model.ssl_loss(self.views(model, x, gen), self.step, gen)
        n = torch.tensor(len(x))
        return {"n": n, "loss": loss.detach().double() * n}

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": float(totals["loss"] / totals["n"])}

    # ----------------------------------------------------------------- the frozen-feature evaluation

    def calibrate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """Features of the training split, the fitted probe, and the k-NN bank (float16)."""
        feats, labels = extract_features(model.forward_features, data.eval_batches("train", device))
        if self.config.probe_limit is not None:
            feats, labels = feats[: self.config.probe_limit], labels[: self.config.probe_limit]
        probe = fit_linear_probe(feats, labels, self.num_classes or int(labels.max()) + 1,
                                 self.config.probe_l2, self.config.probe_iterations)
        return {**probe.state(), "bank": feats.half(), "bank_labels": labels,
                "train_probe_accuracy": torch.tensor(probe.accuracy(feats, labels))}

    def score(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Linear-probe and k-NN accuracy of test ``features`` against the calibrated training state."""
        state = self.calibration_state()
        if "bank" not in state:
            raise ConfigError("the ssl task has no fitted probe: evaluate a completed run (deepatlas evaluate RUN).")
        c = self.config
        classes = self.num_classes or int(state["bank_labels"].max()) + 1
        return {
            "linear_probe": LinearProbe.from_state(state).accuracy(features, labels),
            "knn": knn_accuracy(state["bank"].float(), state["bank_labels"], features, labels, classes,
                                c.knn_k, c.knn_temperature, c.knn_weighted),
        }

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> Evaluation:
        batches = list(batches)
        metrics = self.reduce(accumulate(self, model, batches))
        was_training = model.training
        model.eval()
        try:
            feats, labels = extract_features(model.forward_features, batches)
        finally:
            model.train(was_training)
        if "bank" in self.calibration_state():
            metrics.update(self.score(feats, labels))
        return Evaluation(metrics, {})

    @torch.no_grad()
    def figures(
        self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Evaluation | None = None,
    ) -> list[Path]:
        """MAE: rows of originals, masked inputs (75% of patches removed) and reconstructions."""
        if not getattr(model, "reconstructs", False):
            return []
        from ..report.plots import save_image_grid

        x = batch[0][:16]
        masked, recon = model.reconstruct(x, torch.Generator().manual_seed(0))
        grid = torch.cat([x, masked, recon]).clamp(0, 1).float().cpu()
        return [save_image_grid(grid, folder / f"mae-reconstructions-{split}.png", nrow=len(x))]


TASKS.register(
    "ssl", SSLTask, SSLConfig(), family="ssl",
    doc="self-supervised learning (SimCLR, BYOL, MoCo v2, MAE): two-view augmentations, linear probe and k-NN on frozen features",
)
