"""Classification metrics against scikit-learn as the oracle, and batch-sum exactness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss, top_k_accuracy_score

from deepatlas.metrics import classification_metrics, classification_stats


def stats_over_batches(logits: torch.Tensor, targets: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    total: dict[str, torch.Tensor] = {}
    for lo, ta in zip(logits.split(batch), targets.split(batch), strict=True):
        for k, v in classification_stats(lo, ta).items():
            total[k] = total[k] + v.double() if k in total else v.double()
    return total


def test_metrics_match_sklearn_and_do_not_depend_on_batching() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1000, 7) * 2
    targets = torch.randint(0, 7, (1000,))
    m = classification_metrics(stats_over_batches(logits, targets, 1000))
    m_batched = classification_metrics(stats_over_batches(logits, targets, 37))
    assert m == pytest.approx(m_batched, rel=1e-6)  # float32 sums within a batch
    probs = logits.double().softmax(1).numpy()
    y, pred = targets.numpy(), logits.argmax(1).numpy()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["nll"] == pytest.approx(log_loss(y, probs, labels=range(7)), rel=1e-5)
    assert m["top5_accuracy"] == pytest.approx(top_k_accuracy_score(y, probs, k=5, labels=range(7)))


def test_ece_by_hand() -> None:
    # Two examples in the 0.9 bin (one right: acc 0.5, conf 0.9), one in the 0.6 bin (right).
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    logits = p.log()
    targets = torch.tensor([0, 1, 1])
    ece = classification_metrics(classification_stats(logits, targets))["ece"]
    expected = (2 / 3) * abs(0.5 - 0.9) + (1 / 3) * abs(1.0 - 0.6)
    assert ece == pytest.approx(expected, rel=1e-5)


def test_confusion_matrix_counts() -> None:
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 2]), 3).float()
    stats = classification_stats(logits, torch.tensor([0, 1, 2, 2]))
    assert np.array_equal(stats["confusion"].numpy(), [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
