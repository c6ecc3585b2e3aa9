"""Sample-quality metrics computed on a fixed classifier's features and predictions.

Frechet distance (Heusel et al. 2017, the FID's formula on other features): with (mu_r, S_r)
and (mu_g, S_g) the mean and covariance of real and generated features,
    FD = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2}).
Inception-Score analogue (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) with p(y|x) the
classifier's softmax; at most the number of classes. Class coverage: the fraction of classes
among the generated samples' predicted labels, and the distribution itself, so that mode
collapse shows as missing classes.
Statistics are accumulated in float64; the covariance square root uses scipy.linalg.sqrtm.
"""

from __future__ import annotations

import numpy as np
import torch


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    from scipy import linalg

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # a singular product: regularise, as the reference FID code does
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def inception_score(probs: torch.Tensor | np.ndarray, eps: float = 1e-12) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) from class probabilities (N, K)."""
    p = np.asarray(probs, dtype=np.float64)
    marginal = p.mean(axis=0, keepdims=True)
    kl = (p * (np.log(p + eps) - np.log(marginal + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))


def class_coverage(predicted: torch.Tensor | np.ndarray, num_classes: int, min_fraction: float = 0.01) -> dict[str, object]:
    """Share of each class among predicted labels and the fraction of classes above ``min_fraction``."""
    counts = np.bincount(np.asarray(predicted, dtype=np.int64), minlength=num_classes)
    share = counts / max(counts.sum(), 1)
    return {"coverage": float((share >= min_fraction).mean()), "class_share": share.tolist()}
