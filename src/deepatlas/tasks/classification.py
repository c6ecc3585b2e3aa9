"""Classification: cross-entropy with optional label smoothing (Szegedy et al., 2016).

L = -sum_k q_k log p_k with q = (1 - eps) onehot(y) + eps / K.
For imbalanced classes: class weights w_y (``class_weights``: ``balanced`` n / (K n_c), or
``effective-number`` (1 - beta) / (1 - beta^{n_c}) of Cui et al. 2019), the weighted mean
sum_i w_{y_i} l_i / sum_i w_{y_i}, and the focal loss -(1 - p_t)^gamma log p_t (Lin et al. 2017,
``focal_gamma``); see :mod:`deepatlas.nn.losses`. The weights come from the training split's class
counts (``class_counts`` of the data meta).
Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) train on mixed pairs of examples and their mixed
labels (``mixup_alpha``, ``cutmix_alpha``; see :mod:`deepatlas.nn.mixing`); validation is never mixed.
Validation reports accuracy, top-5 accuracy, macro-F1, NLL and ECE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..metrics import classification_metrics, classification_stats
from ..nn.mixing import MixSettings, mix_batch
from ..registry import TASKS
from ..schema import option
from .base import Evaluation, ExportInputs, StepOutput, Task, accumulate


@dataclass(frozen=True)
class ClassificationConfig:
    label_smoothing: float = option(0.0, "label smoothing epsilon of the training loss", low=0.0, high=1.0)
    topk: int = option(5, "k of the top-k accuracy", low=1)
    ece_bins: int = option(15, "confidence bins of the expected calibration error", low=1)
    class_weights: Literal["none", "balanced", "effective-number"] = option(
        "none", "weights of the training loss per class, from the training class counts (imbalanced data)",
    )
    cb_beta: float = option(0.999, "effective-number weights: beta of (1 - beta) / (1 - beta^n_c)", low=0.0, high=0.999999)
    focal_gamma: float = option(0.0, "focal loss exponent gamma of (1 - p_t)^gamma (0: cross-entropy)", low=0.0)


@dataclass(frozen=True)
class MixingClassificationConfig(ClassificationConfig):
    """The classification task's options: the loss's, and Mixup / CutMix of the training batches."""

    mixup_alpha: float = option(0.0, "mixup: lambda ~ Beta(alpha, alpha) (Zhang et al. 2018 use 0.2-0.4; 0: off)", low=0.0)
    cutmix_alpha: float = option(0.0, "CutMix: lambda ~ Beta(alpha, alpha) (Yun et al. 2019 use 1.0; 0: off)", low=0.0)
    mix_prob: float = option(1.0, "probability that a training batch is mixed (mixup or CutMix on)", low=0.0, high=1.0)
    mix_switch_prob: float = option(
        0.5, "with both mixup_alpha and cutmix_alpha on: probability that a batch gets CutMix rather than mixup",
        low=0.0, high=1.0,
    )


class Classification(Task):
    monitor = ("accuracy", "max")
    directions: ClassVar[Mapping[str, str]] = {"accuracy": "max", "macro_f1": "max", "nll": "min", "ece": "min"}
    capabilities = frozenset({"predict", "export"})
    predicts = "labels"
    data_kind = "labelled"

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        classes = meta.get("num_classes")
        if isinstance(classes, int) and classes < 2:  # a generative task may train on one class; a classifier not
            names = ", ".join(repr(n) for n in meta.get("class_names") or [])
            raise DataError(
                f"data: only one class ({names or classes}); a classifier needs at least two "
                "(for an image folder: one sub-folder per class)."
            )
        # the preset k on fewer classes is clamped (top-5 of 3 classes); a k the user chose must make sense
        if isinstance(classes, int) and config.topk > classes and config.topk != ClassificationConfig().topk:
            raise ConfigError(
                f"task.topk: {config.topk} is more than the {classes} classes of the data (allowed: 1..{classes}); "
                f"set task.topk={min(5, classes)} or lower."
            )
        self.class_weight = self._class_weights(config, meta)
        self.mixing = MixSettings(
            getattr(config, "mixup_alpha", 0.0), getattr(config, "cutmix_alpha", 0.0),
            getattr(config, "mix_prob", 1.0), getattr(config, "mix_switch_prob", 0.5),
        )
        if config.focal_gamma > 0 and config.label_smoothing > 0:
            raise ConfigError("task.focal_gamma: the focal loss does not combine with task.label_smoothing; set one of them to 0.")

    @staticmethod
    def _class_weights(config: Any, meta: Mapping[str, Any]) -> torch.Tensor | None:
        """The per-class weights of ``task.class_weights`` from the training counts in the meta (None: unweighted)."""
        mode = getattr(config, "class_weights", "none")
        if mode == "none":
            return None
        counts = meta.get("class_counts")
        if counts is None:
            raise ConfigError(
                f"task.class_weights={mode}: this dataset does not record its training class counts (meta 'class_counts'; "
                "tables do); use task.class_weights=none, or task.focal_gamma for hard examples."
            )
        from ..nn.losses import balanced_weights, effective_number_weights

        return balanced_weights(counts) if mode == "balanced" else effective_number_weights(counts, config.cb_beta)

    @classmethod
    def metric_directions(cls, config: Any = None) -> dict[str, str]:
        topk = config.topk if config is not None else ClassificationConfig().topk
        return {**cls.directions, f"top{topk}_accuracy": "max"}

    def model_meta(self) -> dict[str, Any]:
        """A network with ``num_outputs`` (a tabular one) outputs one logit per class."""
        classes = self.meta.get("num_classes")
        return {"num_outputs": classes} if isinstance(classes, int) else {}

    def logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        """(B, K) logits of a batch's inputs; graph tasks override this and ``logits_and_targets``."""
        return model(inputs)

    def logits_and_targets(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K) logits and (B,) labels of a batch."""
        x, y = batch
        return self.logits(model, x), y

    def export_inputs(self, batch: Any) -> ExportInputs:
        """``model(x)`` with x (B, ...) a tensor (images, flat rows), or ``model(*x)`` for a tuple of tensors
        (a table's numeric and categorical columns); the batch dimension is dynamic."""
        x = batch[0]
        args = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        if not all(isinstance(a, torch.Tensor) for a in args):
            raise self.cannot("export (its inputs are not tensors)")
        names = ("input",) if len(args) == 1 else tuple(f"input_{i}" for i in range(len(args)))
        return ExportInputs(args, names, tuple({0: "batch"} for _ in args))

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``label`` (B,) and ``probabilities`` (B, K) of the softmax."""
        probabilities = torch.softmax(self.logits(model, inputs).float(), dim=-1)
        return {"label": probabilities.argmax(-1), "probabilities": probabilities}

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        if self.mixing.on:
            return self._mixed_step(model, batch)
        logits, y = self.logits_and_targets(model, batch)  # (B, K), (B,)
        loss = self.loss(logits, y)
        accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
        return StepOutput(loss, {"loss": loss.detach(), "accuracy": accuracy})

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of (B, K) logits for (B,) labels: cross-entropy, class-weighted or focal."""
        weight = self.class_weight.to(logits.device) if self.class_weight is not None else None
        if getattr(self.config, "focal_gamma", 0.0) > 0:
            from ..nn.losses import focal, weighted_mean

            return weighted_mean(focal(logits, y, self.config.focal_gamma, weight), y, weight)
        return F.cross_entropy(logits, y, weight=weight, label_smoothing=self.config.label_smoothing)

    def _mixed_step(self, model: nn.Module, batch: Any) -> StepOutput:
        """Mixup / CutMix: the loss is lam L(z, y_a) + (1 - lam) L(z, y_b), i.e. L on the soft targets."""
        x, y = batch
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ConfigError(
                "task.mixup_alpha: mixing needs inputs that are one float tensor (images, numeric rows), not "
                f"{type(x).__name__}; set task.mixup_alpha=0 and task.cutmix_alpha=0."
            )
        if self.mixing.cutmix_alpha > 0 and x.ndim != 4:
            raise ConfigError(
                f"task.cutmix_alpha: CutMix pastes boxes of images (B, C, H, W), these inputs are {tuple(x.shape)}; "
                "set task.cutmix_alpha=0 (task.mixup_alpha works on any numeric input)."
            )
        mixed = mix_batch(x, y, self.mixing)
        if mixed is None:  # mix_prob < 1: this batch trains as it is
            logits = self.logits(model, x)
            loss, lam, y_b = self.loss(logits, y), 1.0, y
        else:
            logits = self.logits(model, mixed.x)
            lam, y_b = mixed.lam, mixed.y_b
            loss = lam * self.loss(logits, y) + (1.0 - lam) * self.loss(logits, y_b)
        predicted = logits.detach().argmax(dim=1)
        accuracy = lam * (predicted == y).float().mean() + (1.0 - lam) * (predicted == y_b).float().mean()
        return StepOutput(loss, {"loss": loss.detach(), "accuracy": accuracy})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        logits, y = self.logits_and_targets(model, batch)
        return classification_stats(logits, y, topk=self.config.topk, bins=self.config.ece_bins)

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return classification_metrics(totals, topk=self.config.topk)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> Evaluation:
        totals = accumulate(self, model, batches)
        arrays = {
            "confusion_matrix": totals["confusion"].long().numpy(),
            "calibration": {
                "count": totals["bin_count"].numpy(),
                "confidence": totals["bin_confidence"].numpy(),
                "correct": totals["bin_correct"].numpy(),
            },
        }
        return Evaluation(self.reduce(totals), arrays)

    def figures(
        self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Evaluation | None = None,
    ) -> list[Path]:
        """The confusion matrix and the reliability diagram of an evaluation, and for images the most confidently
        wrong examples of the split's first batch (``wrong-<split>.png``)."""
        if evaluation is None or "confusion_matrix" not in evaluation.arrays:
            return []
        from ..report import plot_confusion, plot_reliability

        confusion = evaluation.arrays["confusion_matrix"]
        names = self.meta.get("class_names") or [str(i) for i in range(len(confusion))]
        out = [
            plot_confusion(confusion, names, folder / f"confusion-{split}.png", f"{folder.name} ({split})"),
            plot_reliability(evaluation.arrays["calibration"], folder / f"reliability-{split}.png", f"{split} calibration"),
        ]
        if batch is not None and isinstance(batch[0], torch.Tensor) and batch[0].ndim == 4:
            wrong = self._confident_errors(model, batch, names, folder / f"wrong-{split}.png", split)
            out += [wrong] if wrong is not None else []
        return out

    @torch.no_grad()
    def _confident_errors(self, model: nn.Module, batch: Any, names: list[str], path: Path, split: str, count: int = 16) -> Path | None:
        from ..report.plots import plot_image_titles

        x, y = batch
        was_training = model.training
        model.eval()
        try:
            p = model(x).float().softmax(dim=1)
        finally:
            model.train(was_training)
        confidence, predicted = p.max(dim=1)
        wrong = (predicted != y).nonzero().flatten()
        if len(wrong) == 0:
            return None
        order = wrong[confidence[wrong].argsort(descending=True)][:count]
        titles = [f"{names[predicted[i]]} {confidence[i]:.2f}\n(true: {names[y[i]]})" for i in order.tolist()]
        return plot_image_titles(x[order].float().cpu().numpy(), titles, path, f"most confidently wrong ({split}, first batch)")


TASKS.register(
    "classification", Classification, MixingClassificationConfig(), family="classification",
    doc="cross-entropy classification (accuracy, top-5, macro-F1, NLL, ECE)",
)
