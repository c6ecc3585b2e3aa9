"""Contrastive language-image pre-training (CLIP, Radford et al. 2021): the symmetric InfoNCE objective,
zero-shot classification and retrieval.

Training: a batch of n (image, caption) pairs gives the (n, n) logits exp(t) I_e T_e^T and the loss
L = 1/2 (CE(S, diag) + CE(S^T, diag)) (the survey seed's equation (8), both directions).

Validation reports
- ``loss``: the symmetric loss, averaged over the evaluation batches (``data.eval_batch_size`` pairs each);
- retrieval: the split cut, in order, into galleries of ``task.gallery`` pairs (the remainder joins the last);
  ``i2t_r{k}``: the fraction of images whose own caption is among the k captions of the gallery most similar
  to it, ``t2i_r{k}`` the same from captions to images (recall@k as in CLIP's Flickr30k/COCO tables). Where
  the examples have classes, ``i2t_class_r{k}`` and ``t2i_class_r{k}`` count a hit when one of the k shares
  the class (captions that only describe a class are otherwise interchangeable);
- ``zero_shot_accuracy`` where the data names its classes and prompt templates (Section 3.1.4): each class's
  classifier weight is the mean of the normalised embeddings of its prompts (one per held-out template:
  prompt ensembling), renormalised; an image's class is the most similar weight. No head is trained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.losses import clip_loss
from ..registry import TASKS
from ..schema import option
from .base import StepOutput, Task


@dataclass(frozen=True)
class CLIPTaskConfig:
    recall_at: tuple[int, ...] = option((1, 5, 10), "k of the retrieval recall@k metrics", low=1)
    gallery: int = option(1000, "retrieval: pairs per gallery (the split is cut into galleries of this size)", low=2)
    zero_shot: bool = option(True, "zero-shot accuracy from class-name prompts, where the data names its classes")


class CLIPTask(Task):
    monitor = ("loss", "min")
    directions: ClassVar[Mapping[str, str]] = {"loss": "min", "zero_shot_accuracy": "max", "logit_scale": "max"}
    capabilities = frozenset({"embed", "zero-shot"})
    data_kind = "image-text"

    @classmethod
    def metric_directions(cls, config: Any = None) -> dict[str, str]:
        ks = config.recall_at if config is not None else CLIPTaskConfig().recall_at
        recalls = {f"{d}{c}_r{k}": "max" for d in ("i2t", "t2i") for c in ("", "_class") for k in ks}
        return {**cls.directions, **recalls}

    # ----------------------------------------------------------------- training

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        images, tokens, _ = batch
        logits = model(images, tokens)  # (n, n), pair i on the diagonal
        loss = clip_loss(logits)
        with torch.no_grad():
            target = torch.arange(len(logits), device=logits.device)
            accuracy = ((logits.argmax(1) == target).float().mean() + (logits.argmax(0) == target).float().mean()) / 2
        return StepOutput(loss, {"loss": loss.detach(), "accuracy": accuracy, "logit_scale": model.scale().detach()})

    # ----------------------------------------------------------------- validation

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, tokens, labels = batch
        image, text = model.encode_image(images), model.encode_text(tokens)
        loss = clip_loss(model.logits(image, text))
        stats = {
            "loss_sum": loss * len(images), "count": torch.tensor(len(images)), "scale_sum": model.scale() * len(images),
            "rows/image": image, "rows/text": text, "rows/label": labels,
        }
        weights = self._prompt_weights(model, images.device)
        if weights is not None:
            known = labels >= 0
            predicted = (image @ weights.t()).argmax(-1)
            stats["zs_correct"] = ((predicted == labels) & known).sum()
            stats["zs_count"] = known.sum()
        return stats

    def _prompt_weights(self, model: nn.Module, device: torch.device) -> torch.Tensor | None:
        """(K, D) zero-shot classifier of the data's classes from its held-out prompt templates; None without them."""
        names, templates, text = (self.meta.get(k) for k in ("prompt_names", "prompt_templates", "_text"))
        if not self.config.zero_shot or not names or not templates or text is None:
            return None
        from ..data.captions import prompts

        tokens = text([p for group in prompts(names, templates) for p in group]).to(device)
        return self.classifier(model, tokens.view(len(names), len(templates), -1))

    @staticmethod
    def classifier(model: nn.Module, prompt_tokens: torch.Tensor) -> torch.Tensor:
        """(K, D) class weights from prompts (K classes, T templates, L tokens): the mean of each class's
        normalised prompt embeddings, renormalised (CLIP's prompt ensembling)."""
        k, t, length = prompt_tokens.shape
        z = model.encode_text(prompt_tokens.reshape(k * t, length)).view(k, t, -1)
        return F.normalize(z.mean(dim=1), dim=-1)

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        count = float(totals["count"])
        metrics = {"loss": float(totals["loss_sum"]) / count, "logit_scale": float(totals["scale_sum"]) / count}
        if "zs_count" in totals and float(totals["zs_count"]) > 0:
            metrics["zero_shot_accuracy"] = float(totals["zs_correct"]) / float(totals["zs_count"])
        labels = totals["rows/label"]
        metrics.update(retrieval(
            totals["rows/image"].float(), totals["rows/text"].float(), labels if bool((labels >= 0).all()) else None,
            self.config.recall_at, self.config.gallery,
        ))
        return metrics

    # ----------------------------------------------------------------- what a trained run can do

    @torch.no_grad()
    def embed(self, model: nn.Module, inputs: torch.Tensor, modality: str) -> torch.Tensor:
        """(B, D) L2-normalised embeddings of preprocessed images or caption tokens."""
        return model.encode_image(inputs) if modality == "image" else model.encode_text(inputs)

    @torch.no_grad()
    def zero_shot(self, model: nn.Module, images: torch.Tensor, prompt_tokens: torch.Tensor) -> torch.Tensor:
        """(B, K) class probabilities, softmax(exp(t) I_e W^T), with W from ``classifier(prompt_tokens)``."""
        weights = self.classifier(model, prompt_tokens)
        return torch.softmax(model.logits(model.encode_image(images), weights).float(), dim=-1)


def recall_at(similarity: torch.Tensor, relevant: torch.Tensor, ks: Sequence[int]) -> dict[int, torch.Tensor]:
    """For each row of (Q, G) similarities and a (Q, G) boolean relevance, whether a relevant item is among the
    k most similar (one (Q,) boolean tensor per k)."""
    order = similarity.argsort(dim=1, descending=True)
    hits = relevant.gather(1, order)  # (Q, G) relevance in rank order
    first = torch.where(hits.any(1), hits.float().argmax(1), torch.full((len(hits),), hits.shape[1]))
    return {k: first < k for k in ks}


def retrieval(
    image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor | None, ks: Sequence[int], gallery: int,
) -> dict[str, float]:
    """Recall@k from images to captions and back, in galleries of ``gallery`` consecutive pairs; with labels, also
    the class-level recall (a hit when a retrieved item shares the query's class)."""
    n = len(image)
    bounds = list(range(0, n, gallery))
    if len(bounds) > 1 and n - bounds[-1] < gallery:
        bounds.pop()  # the remainder joins the last gallery, which never has fewer than ``gallery`` pairs
    hits: dict[str, float] = {}
    for lo, hi in zip(bounds, [*bounds[1:], n], strict=True):
        sim = image[lo:hi] @ text[lo:hi].t()  # (G, G): image i against caption j
        same = torch.eye(hi - lo, dtype=torch.bool)
        kinds = {"": same}
        if labels is not None:
            kinds["_class"] = labels[lo:hi, None] == labels[None, lo:hi]
        for kind, relevant in kinds.items():
            for direction, s, r in (("i2t", sim, relevant), ("t2i", sim.t(), relevant.t())):
                for k, hit in recall_at(s, r, ks).items():
                    key = f"{direction}{kind}_r{k}"
                    hits[key] = hits.get(key, 0.0) + float(hit.sum())
    return {key: value / n for key, value in hits.items()}


TASKS.register(
    "clip", CLIPTask, CLIPTaskConfig(), family="clip",
    doc="contrastive image-text pre-training (symmetric InfoNCE; retrieval recall@k, zero-shot accuracy)",
)
