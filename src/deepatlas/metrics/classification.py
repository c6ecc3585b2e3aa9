"""Classification metrics from summable per-batch statistics.

Every statistic is a sum over examples, so a split is evaluated batch by batch
and the metrics are exact: accuracy, top-k accuracy, macro-F1 (from the
confusion matrix), negative log-likelihood (nats per example) and the expected
calibration error of Guo et al. (2017), ECE = sum_m |B_m|/n |acc(B_m) - conf(B_m)|
over equal-width confidence bins.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def classification_stats(
    logits: torch.Tensor, targets: torch.Tensor, *, topk: int = 5, bins: int = 15
) -> dict[str, torch.Tensor]:
    """Summable statistics of one batch: logits (B, K), integer targets (B,)."""
    logits = logits.float()
    num_classes = logits.shape[1]
    log_probs = F.log_softmax(logits, dim=1)
    nll = F.nll_loss(log_probs, targets, reduction="sum")
    confidence, predicted = log_probs.exp().max(dim=1)
    correct = predicted == targets
    k = min(topk, num_classes)
    in_topk = (logits.topk(k, dim=1).indices == targets[:, None]).any(dim=1)
    confusion = torch.bincount(targets * num_classes + predicted, minlength=num_classes**2)
    bin_index = (confidence * bins).long().clamp_(max=bins - 1)
    return {
        "n": torch.tensor(float(len(targets)), device=logits.device),
        "nll_sum": nll,
        "correct": correct.sum().float(),
        "topk_correct": in_topk.sum().float(),
        "confusion": confusion.view(num_classes, num_classes),
        "bin_count": torch.bincount(bin_index, minlength=bins).float(),
        "bin_confidence": torch.zeros(bins, device=logits.device).index_add_(0, bin_index, confidence),
        "bin_correct": torch.zeros(bins, device=logits.device).index_add_(0, bin_index, correct.float()),
    }


def macro_f1(confusion: torch.Tensor) -> float:
    """Unweighted mean of per-class F1 over classes that occur in targets or predictions."""
    confusion = confusion.double()
    tp = confusion.diag()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp_min(1e-12)
    return float(f1[present].mean()) if present.any() else 0.0


def classification_metrics(totals: Mapping[str, torch.Tensor], topk: int = 5) -> dict[str, float]:
    """accuracy, top-k accuracy, macro-F1, NLL and ECE from summed statistics."""
    n = float(totals["n"])
    count = totals["bin_count"].double()
    ece = (totals["bin_correct"].double() - totals["bin_confidence"].double()).abs().sum() / max(n, 1.0)
    del count
    return {
        "accuracy": float(totals["correct"]) / n,
        f"top{topk}_accuracy": float(totals["topk_correct"]) / n,
        "macro_f1": macro_f1(totals["confusion"]),
        "nll": float(totals["nll_sum"]) / n,
        "ece": float(ece),
    }


def probability_metrics(probabilities: torch.Tensor, targets: torch.Tensor, bins: int = 15) -> dict[str, float]:
    """accuracy, NLL and ECE of predicted class probabilities (N, K) for integer targets (N,), e.g. an
    ensemble's averaged distribution; the same confidence bins as :func:`classification_stats`."""
    p = probabilities.double()
    n = max(len(targets), 1)
    confidence, predicted = p.max(dim=1)
    correct = (predicted == targets).double()
    nll = -p.gather(1, targets[:, None]).squeeze(1).clamp_min(torch.finfo(torch.float64).tiny).log()
    bin_index = (confidence * bins).long().clamp_(max=bins - 1)
    gap = torch.zeros(bins, dtype=torch.float64).index_add_(0, bin_index, correct - confidence)
    return {"accuracy": float(correct.sum()) / n, "nll": float(nll.sum()) / n, "ece": float(gap.abs().sum()) / n}
