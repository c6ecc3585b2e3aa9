"""Knowledge distillation (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge in a Neural Network").

A student classifier learns from a trained teacher run (``task.teacher=<run id>``) as well as from the labels:

    L = alpha T^2 KL( softmax(z_t / T) || softmax(z_s / T) ) + (1 - alpha) CE(z_s, y)

with z_t, z_s the teacher's and the student's logits and T the temperature (Section 2: the soft targets'
gradients scale as 1/T^2, so the soft term is multiplied by T^2 to keep the two terms' relative weight
when T changes). The teacher is frozen: built from its run's config, loaded with its best (or last)
weights, in eval mode (its batch norms use their running statistics, its dropout is off), its parameters
need no gradient and its forward runs under ``torch.no_grad``; it is held by the task, not by the model,
so the student's checkpoints, exports and parameter counts are the student's alone. Any pair of
classifiers on the same dataset works (a ResNet-20 teacher and a narrower ResNet or an MLP student);
validation reports the student's classification metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, RunError
from ..registry import TASKS
from ..schema import option
from .base import StepOutput
from .classification import Classification, ClassificationConfig


@dataclass(frozen=True)
class DistillationConfig(ClassificationConfig):
    teacher: str = option("", "run id, unique prefix or folder of the trained teacher classifier (required)")
    teacher_checkpoint: Literal["best", "last"] = option("best", "the teacher's weights: best or last")
    teacher_runs_dir: Optional[str] = option(None, "run store of the teacher (null: $DEEPATLAS_RUNS_DIR, else ./runs)")
    temperature: float = option(4.0, "softmax temperature T of the soft targets (Hinton et al. 2015: 1-20)", low=1e-3)
    alpha: float = option(0.9, "weight of the soft-target term: alpha T^2 KL + (1 - alpha) CE", low=0.0, high=1.0)


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, temperature: float, alpha: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, soft term KL(p_t^T || p_s^T) before the T^2 factor, hard term CE) for logits (B, K) and labels (B,)."""
    t = temperature
    log_p_student = F.log_softmax(student.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher.float() / t, dim=-1)
    soft = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")  # sum_k p_t (log p_t - log p_s)
    hard = F.cross_entropy(student, targets, label_smoothing=label_smoothing)
    return alpha * t * t * soft + (1.0 - alpha) * hard, soft, hard


class Distillation(Classification):
    """Classification of the student, trained on the teacher's softened outputs and the labels."""

    def __init__(self, config: DistillationConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        if not config.teacher:
            raise ConfigError("task.teacher: distillation needs the trained teacher run; set task.teacher=<run id>.")
        for key, off in (("class_weights", "none"), ("focal_gamma", 0.0)):
            if getattr(config, key) != off:
                raise ConfigError(f"task.{key}: not part of the distillation loss; set task.{key}={off}.")
        self._teacher: nn.Module | None = None

    def lineage(self) -> dict[str, Any] | None:
        return {"parent": self.teacher_run().id, "kind": "distillation",
                "temperature": self.config.temperature, "alpha": self.config.alpha}

    def teacher_run(self) -> Any:
        from ..tracking import RunStore

        return RunStore(self.config.teacher_runs_dir).open(self.config.teacher)

    def teacher(self) -> nn.Module:
        """The frozen teacher (built and loaded once, eval mode, no gradients)."""
        if self._teacher is None:
            self._teacher = self._load_teacher()
        return self._teacher

    def _load_teacher(self) -> nn.Module:
        from ..build import build_task, load_trained_model

        run = self.teacher_run()
        config = run.config
        meta = (run.summary.get("data") or {}).get("meta") or {}
        task = build_task(config, meta)
        if task.predicts != "labels":
            raise ConfigError(f"task.teacher: run {run.id} is a {config.task.name} run, not a classifier; name a classification run.")
        for key in ("num_classes", "in_channels", "input_size", "class_names"):
            theirs, ours = meta.get(key), self.meta.get(key)
            if theirs is not None and ours is not None and theirs != ours:
                raise ConfigError(
                    f"task.teacher: run {run.id} ({config.data.name}) has {key} {theirs}, this run's data {ours}; "
                    "the teacher must have been trained on the same kind of data."
                )
        model, _, _, _ = load_trained_model(run, config, task, self.config.teacher_checkpoint)
        model.requires_grad_(False)
        return model.eval()

    def check_model(self, model: nn.Module) -> None:
        """The teacher must exist and fit this data before any work."""
        super().check_model(model)
        try:
            self.teacher()
        except RunError as exc:
            raise ConfigError(f"task.teacher: {exc}") from None

    @torch.no_grad()
    def teacher_logits(self, inputs: Any) -> torch.Tensor:
        teacher = self.teacher()
        device = inputs.device if isinstance(inputs, torch.Tensor) else None
        if device is not None and next(teacher.parameters()).device != device:
            teacher.to(device)
        teacher.eval()  # whatever the caller did with train(): the teacher's batch norms keep their statistics
        return self.logits(teacher, inputs)

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        x, y = batch
        student = self.logits(model, x)  # (B, K)
        teacher = self.teacher_logits(x)  # (B, K), no graph
        loss, soft, hard = distillation_loss(student, teacher, y, self.config.temperature, self.config.alpha, self.config.label_smoothing)
        accuracy = (student.detach().argmax(dim=1) == y).float().mean()
        agreement = (student.detach().argmax(dim=1) == teacher.argmax(dim=1)).float().mean()
        return StepOutput(loss, {"loss": loss.detach(), "soft_kl": soft.detach(), "hard_ce": hard.detach(),
                                 "accuracy": accuracy, "teacher_agreement": agreement})


TASKS.register(
    "distillation", Distillation, DistillationConfig(), family="classification",
    doc="knowledge distillation from a trained teacher run (Hinton et al. 2015): alpha T^2 KL + (1 - alpha) CE",
)
