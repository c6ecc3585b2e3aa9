"""Losses of self-supervised representation learning.

NT-Xent (SimCLR, Chen et al. 2020, eq. 1). For 2N projections z (two views of N images),
sim(u, v) = u.v / (|u| |v|) and a positive pair (i, j),
    l(i, j) = -log exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau),
averaged over all 2N anchors (both (i, j) and (j, i)).

BYOL (Grill et al. 2020, eq. 2): the online prediction q and the target projection z' of the
other view, both L2-normalised, are pulled together with
    L = |q/|q| - z'/|z'||^2 = 2 - 2 q.z' / (|q| |z'|),
symmetrised over the two views; z' carries no gradient (stop-gradient).

InfoNCE with a queue (MoCo, He et al. 2020, eq. 1; MoCo v2, Chen et al. 2020): a query q, its
positive key k+ (the momentum encoder's projection of the other view) and K negative keys from
a queue of past keys, all L2-normalised,
    L = -log exp(q.k+ / tau) / (exp(q.k+ / tau) + sum_{k in queue} exp(q.k / tau)),
i.e. a (K+1)-way cross-entropy whose correct class is 0. MoCo v2 uses tau = 0.2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy over the 2N views; z1, z2: (N, D)."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent needs two (N, D) batches of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)  # i's positive is i + N and back
    return F.cross_entropy(logits, targets)


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(q, z') per pair, averaged; ``target`` is detached here (the stop-gradient)."""
    q = F.normalize(prediction.float(), dim=-1)
    z = F.normalize(target.detach().float(), dim=-1)
    return (2 - 2 * (q * z).sum(-1)).mean()


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo's InfoNCE: query (N, D), positive keys (N, D), negatives ``queue`` (K, D); keys and queue detached."""
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.detach().float(), dim=1)
    negatives = F.normalize(queue.detach().float(), dim=1)
    positive = (q * k).sum(1, keepdim=True)  # (N, 1)
    negative = q @ negatives.T  # (N, K)
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
