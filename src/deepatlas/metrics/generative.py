"""Sample-quality metrics computed on a fixed classifier's features and predictions.

Frechet distance (Heusel et al. 2017, the FID's formula on other features): with (mu_r, S_r)
and (mu_g, S_g) the mean and covariance of real and generated features,
    FD = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2}).
Inception-Score analogue (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) with p(y|x) the
classifier's softmax; at most the number of classes. Class coverage: the fraction of classes
among the generated samples' predicted labels, and the distribution itself, so that mode
collapse shows as missing classes.
Statistics are accumulated in float64; the covariance square root uses scipy.linalg.sqrtm.

The features: Inception-v3 weights are not available offline, so the metrics use a network
deepatlas trains itself, ``featurenet-fashion-mnist-v1`` (models/cnn.py ``FeatureNet``: five 3x3
convolutions with BatchNorm, global average pool, 128 features; recipe
featurenet-fashion-mnist, seed 0; ``deepatlas.evaluation.export_feature_network`` writes a
version from a trained run). Its weights ship beside this module and are checked against
their sha256 before use, so every number computed with version 1 is computed with the same
network. It takes 1x28x28 images in [0, 1], so the metrics apply to Fashion-MNIST-shaped data.
The FD estimate is biased upwards at small sample counts (as the FID is): compare numbers at
the same count; ``deepatlas eval`` uses the same count for the real-train-vs-real-test
distance (``fd_real``), the floor a perfect generator would reach.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError


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


# --------------------------------------------------------------------------- the fixed feature network

# Version 1 of the feature network: recipes/featurenet-fashion-mnist.yaml (seed 0), weights
# shipped beside this file. A new version gets a new name; numbers of different versions are
# not comparable.
FEATURE_NETWORK = "featurenet-fashion-mnist-v1"
FEATURE_WEIGHTS = Path(__file__).with_name(f"{FEATURE_NETWORK}.safetensors")
FEATURE_SHA256 = "4a8f74392ead57f2bda3553e7d5d49e972997e2b0e13256426e777acfab6217c"
FEATURE_INPUT = (1, 28, 28)


def load_feature_network(path: str | Path | None = None) -> nn.Module:
    """The fixed feature network (eval mode, CPU). The shipped file is checked against its sha256."""
    from safetensors.torch import load_file

    from ..models.cnn import FeatureNet, FeatureNetConfig

    path = Path(path) if path is not None else FEATURE_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: the feature network's weights are missing (rebuild: deepatlas train featurenet-fashion-mnist).")
    if path == FEATURE_WEIGHTS:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != FEATURE_SHA256:
            raise CheckpointError(f"{path}: sha256 {digest[:12]}... is not {FEATURE_NETWORK}'s ({FEATURE_SHA256[:12]}...); the file was changed.")
    net = FeatureNet(FeatureNetConfig())
    try:
        net.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path}: not the feature network's weights ({exc}).") from None
    return net.eval()


@torch.no_grad()
def embed(net: nn.Module, images: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) and class probabilities (N, K) of images (N, 1, 28, 28) in [0, 1], in float64."""
    if tuple(images.shape[1:]) != FEATURE_INPUT:
        raise ValueError(f"the feature network takes images of shape {FEATURE_INPUT}, got {tuple(images.shape[1:])}")
    device = next(net.parameters()).device
    feats, probs = [], []
    for chunk in images.split(batch_size):
        f = net.forward_features(chunk.to(device).float())
        feats.append(f.double().cpu())
        probs.append(torch.softmax(net.head(f).double(), dim=1).cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def sample_quality(
    net: nn.Module, generated: torch.Tensor, real: torch.Tensor, reference: torch.Tensor | None = None
) -> dict[str, object]:
    """Frechet distance of generated to real images, IS analogue, class coverage; with ``reference``
    (more real images, e.g. from the training split) also the real-vs-real distance that calibrates FD."""
    fg, pg = embed(net, generated)
    fr, pr = embed(net, real)
    mu_g, s_g = feature_statistics(fg)
    mu_r, s_r = feature_statistics(fr)
    out: dict[str, object] = {
        "fd": frechet_distance(mu_g, s_g, mu_r, s_r),
        "is": inception_score(pg),
        "is_real": inception_score(pr),
        **class_coverage(pg.argmax(axis=1), pg.shape[1]),
    }
    if reference is not None:
        mu_x, s_x = feature_statistics(embed(net, reference)[0])
        out["fd_real"] = frechet_distance(mu_x, s_x, mu_r, s_r)
    out["samples"] = int(generated.shape[0])
    out["feature_network"] = FEATURE_NETWORK
    return out
