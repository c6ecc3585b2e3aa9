"""NT-Xent, BYOL's normalised MSE and MoCo's InfoNCE against hand-computed cases and lightly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deepatlas.nn.contrastive import byol_loss, info_nce, nt_xent


def nt_xent_loops(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's eq. 1 written out: l(i, j) over all 2N anchors."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sims = [F.cosine_similarity(z[i], z[k], dim=0) / tau for k in range(n2)]
        denom = sum(math.exp(float(s)) for k, s in enumerate(sims) if k != i)
        total += -math.log(math.exp(float(sims[j])) / denom)
    return torch.tensor(total / n2)


def test_nt_xent_hand_computed() -> None:
    e = torch.eye(2)
    # every anchor: its positive at cosine 1, two negatives at cosine 0 -> -log(e / (e + 2))
    assert float(nt_xent(e, e.clone(), 1.0)) == pytest.approx(math.log(math.e + 2) - 1, abs=1e-6)
    z1, z2 = torch.randn(5, 3), torch.randn(5, 3)
    for tau in (0.1, 0.5, 2.0):
        assert float(nt_xent(z1, z2, tau)) == pytest.approx(float(nt_xent_loops(z1, z2, tau)), abs=1e-5)


def test_nt_xent_is_scale_invariant_and_rejects_bad_shapes() -> None:
    z1, z2 = torch.randn(4, 6), torch.randn(4, 6)
    assert float(nt_xent(3 * z1, 0.5 * z2)) == pytest.approx(float(nt_xent(z1, z2)), abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z1, z2[:3])


def test_nt_xent_equals_lightly() -> None:
    try:
        from lightly.loss import NTXentLoss
    except Exception as exc:  # lightly needs a torchvision that matches torch
        pytest.skip(f"lightly.loss is not importable here ({type(exc).__name__}: {exc})")
    torch.manual_seed(0)
    for tau in (0.1, 0.5, 1.0):
        z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
        torch.testing.assert_close(nt_xent(z1, z2, tau), NTXentLoss(temperature=tau)(z1, z2), atol=1e-5, rtol=0)


def test_byol_loss_hand_computed_and_stop_gradient() -> None:
    a = torch.tensor([[1.0, 0.0]])
    assert float(byol_loss(a, a * 5)) == pytest.approx(0.0, abs=1e-7)
    assert float(byol_loss(a, torch.tensor([[0.0, 2.0]]))) == pytest.approx(2.0)
    assert float(byol_loss(a, -a)) == pytest.approx(4.0)
    q = torch.randn(4, 3, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    byol_loss(q, z).backward()
    assert q.grad is not None and z.grad is None  # the target side is under stop-gradient


def test_info_nce_hand_computed() -> None:
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[2.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    expected = -math.log(math.e / (math.e + 1 + math.exp(-1)))
    assert float(info_nce(q, k, queue, temperature=1.0)) == pytest.approx(expected, abs=1e-6)
    expected = -math.log(math.exp(5) / (math.exp(5) + 1 + math.exp(-5)))
    assert float(info_nce(q, k, queue, temperature=0.2)) == pytest.approx(expected, abs=1e-6)


def test_info_nce_is_cross_entropy_with_class_zero_and_keys_get_no_gradient() -> None:
    q, k = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    queue = torch.randn(10, 4, requires_grad=True)
    loss = info_nce(q, k, queue, 0.2)
    qn, kn, nn_ = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ nn_.T], 1) / 0.2
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.zeros(6, dtype=torch.long)))
    loss.backward()
    assert q.grad is not None and k.grad is None and queue.grad is None
