"""How good is a frozen representation? A linear probe and a k-NN classifier, one protocol for all.

Both read features of the training split (labels allowed: the representation is frozen) and
score the test split:

- linear probe: multinomial logistic regression on the features standardised with the
  training split's mean and standard deviation, minimising the mean cross-entropy plus
  (l2 / 2) |W|^2 with full-batch L-BFGS (strong Wolfe line search) for a fixed number of
  iterations, in float64 - the same model and solver as scikit-learn's
  ``LogisticRegression(solver="lbfgs")``, trained in torch so that it runs on the device;
- k-NN (Wu et al. 2018, Section 3.4): cosine similarity s_i to every training feature; the k
  nearest vote for their class with weight exp(s_i / T) (k = 20, T = 0.07 by default; the
  weighted vote of the paper, ``weighted=False``: a plain majority).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@torch.no_grad()
def extract_features(
    encode: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D) float32 on the CPU, labels (N,)) of every batch, in order."""
    feats, labels = [], []
    for x, y in batches:
        feats.append(encode(x).float().cpu())
        labels.append(y.cpu())
    return torch.cat(feats), torch.cat(labels)


@dataclass
class LinearProbe:
    """A fitted multinomial logistic regression on standardised features."""

    weight: torch.Tensor  # (K, D)
    bias: torch.Tensor  # (K,)
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        z = (features.double() - self.mean) / self.std
        return z @ self.weight.T + self.bias

    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.logits(features).argmax(1) == labels).double().mean())

    def state(self) -> dict[str, torch.Tensor]:
        return {"probe_weight": self.weight, "probe_bias": self.bias, "probe_mean": self.mean, "probe_std": self.std}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> LinearProbe:
        return cls(*(state[k].double() for k in ("probe_weight", "probe_bias", "probe_mean", "probe_std")))


def fit_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float = 1e-4, iterations: int = 200,
) -> LinearProbe:
    """Logistic regression on standardised features by full-batch L-BFGS (a fixed budget of ``iterations``)."""
    x = features.double()
    mean = x.mean(0)
    std = x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    y = labels.long()
    w = torch.zeros(num_classes, z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return LinearProbe(w.detach(), b.detach(), mean, std)


@torch.no_grad()
def knn_predict(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, num_classes: int,
    k: int = 20, temperature: float = 0.07, weighted: bool = True, chunk: int = 1024,
) -> torch.Tensor:
    """Predicted classes (M,) of ``test`` features from the k most cosine-similar ``train`` features."""
    bank = F.normalize(train.float(), dim=1)
    k = min(k, len(bank))
    out = []
    for part in F.normalize(test.float(), dim=1).split(chunk):
        sim, idx = (part @ bank.T).topk(k, dim=1)  # (m, k)
        weight = (sim / temperature).exp() if weighted else torch.ones_like(sim)
        votes = torch.zeros(len(part), num_classes, dtype=weight.dtype)
        votes.scatter_add_(1, train_labels[idx].long(), weight)
        out.append(votes.argmax(1))
    return torch.cat(out)


def knn_accuracy(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor, num_classes: int,
    k: int = 20, temperature: float = 0.07, weighted: bool = True,
) -> float:
    pred = knn_predict(train, train_labels, test, num_classes, k, temperature, weighted)
    return float((pred == test_labels.long()).double().mean())
