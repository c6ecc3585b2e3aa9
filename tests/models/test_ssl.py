"""SimCLR, BYOL, MoCo v2 and MAE: stop-gradient, momentum updates, the queue, masking, the masked loss."""

from __future__ import annotations

import pytest
import torch

from deepatlas.errors import ConfigError
from deepatlas.models.ssl import MAE, cosine_tau, random_masking
from deepatlas.registry import create_model

SMALL_MAE = {"dim": 32, "depth": 1, "heads": 2, "decoder_dim": 16, "decoder_heads": 2, "mlp_ratio": 2.0}


def views(n: int = 8, side: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, side, side, generator=g), torch.rand(n, 1, side, side, generator=g)


def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize(("name", "target"), [("byol", "target_encoder"), ("moco", "key_encoder")])
def test_target_and_key_networks_get_no_gradient(name: str, target: str) -> None:
    model = create_model(name, encoder="lenet5", queue_size=32) if name == "moco" else create_model(name, encoder="lenet5")
    loss, _ = model.ssl_loss(views(), 0, gen())
    loss.backward()
    frozen = list(getattr(model, target).parameters())
    assert frozen and all(p.grad is None and not p.requires_grad for p in frozen)
    assert all(p.grad is not None for p in model.encoder.parameters())
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert not trainable & {id(p) for p in frozen}  # the optimizer never sees them


@pytest.mark.parametrize("name", ["byol", "moco"])
def test_momentum_network_moves_by_the_ema_rule(name: str) -> None:
    model = create_model(name, encoder="lenet5", queue_size=32) if name == "moco" else create_model(name, encoder="lenet5", tau_base=0.9)
    target = model.target_encoder if name == "byol" else model.key_encoder
    rate = 0.9 if name == "byol" else model.config.momentum
    before = params(target)
    with torch.no_grad():  # the online network takes an optimizer step
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    online = params(model.encoder)
    model.train()
    model.ssl_loss(views(), 5, gen())  # the update runs first, at the start of the step
    for t0, t1, o in zip(before, params(target), online, strict=True):
        torch.testing.assert_close(t1, rate * t0 + (1 - rate) * o)
    model.eval()
    frozen = params(target)
    model.ssl_loss(views(), 6, gen())
    assert all(torch.equal(a, b) for a, b in zip(frozen, params(target), strict=True)), "eval mode moves nothing"


def test_byol_tau_schedule() -> None:
    assert cosine_tau(0.996, 0, 100) == pytest.approx(0.996)
    assert cosine_tau(0.996, 50, 100) == pytest.approx(0.998)
    assert cosine_tau(0.996, 100, 100) == pytest.approx(1.0)
    assert cosine_tau(0.996, 70, None) == 0.996


def test_moco_queue_is_a_fifo() -> None:
    model = create_model("moco", encoder="lenet5", queue_size=5, proj_dim=2)
    first = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    model.enqueue(first)
    assert int(model.queue_ptr) == 3 and torch.equal(model.queue[:3], first)
    second = torch.tensor([[4.0, 0.0], [5.0, 0.0], [6.0, 0.0]])
    model.enqueue(second)  # wraps around: the oldest key (1) is replaced by 6
    assert int(model.queue_ptr) == 1
    assert model.queue[:, 0].tolist() == [6.0, 2.0, 3.0, 4.0, 5.0]


def test_moco_training_step_enqueues_one_key_per_image() -> None:
    model = create_model("moco", encoder="lenet5", queue_size=20)
    old = model.queue.clone()
    model.train()
    model.ssl_loss(views(8), 0, gen())
    assert int(model.queue_ptr) == 8
    assert not torch.equal(model.queue[:8], old[:8]) and torch.equal(model.queue[8:], old[8:])
    torch.testing.assert_close(model.queue[:8].norm(dim=1), torch.ones(8))
    model.eval()
    model.ssl_loss(views(8), 1, gen())
    assert int(model.queue_ptr) == 8  # validation does not enqueue
    state = model.state_dict()
    assert {"queue", "queue_ptr"} <= state.keys() and any(k.startswith("key_encoder.") for k in state)


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.9])
def test_masking_keeps_exactly_the_requested_fraction_per_image(ratio: float) -> None:
    n, length = 16, 49
    keep, restore, mask = random_masking(n, length, ratio, gen(), torch.device("cpu"))
    visible = int(length * (1 - ratio))
    assert keep.shape == (n, visible)
    assert (mask.sum(1) == length - visible).all()
    for i in range(n):
        assert len(set(keep[i].tolist())) == visible
        assert (mask[i, keep[i]] == 0).all()  # the kept patches are the visible ones
    assert len({tuple(k.tolist()) for k in keep}) > 1, "each image draws its own mask"
    shuffle = restore.argsort(1)
    assert torch.equal(shuffle[:, :visible], keep)


def test_mae_encoder_sees_only_visible_patches() -> None:
    model = MAE(create_model("mae", **SMALL_MAE).config).eval()
    x, _ = views(4)
    keep, _, mask = random_masking(4, model.num_patches, 0.75, gen(), x.device)
    tokens = model.encode(x, keep)
    assert tokens.shape == (4, 1 + 12, 32)
    # changing the pixels of masked patches leaves the encoder output unchanged
    patches = model.patchify(x)
    changed = model.unpatchify(patches + mask[..., None] * 5.0)
    torch.testing.assert_close(model.encode(changed, keep), tokens)
    torch.testing.assert_close(model.unpatchify(patches), x)


def test_mae_loss_is_only_on_masked_patches() -> None:
    model = create_model("mae", **SMALL_MAE)
    x, _ = views(4)
    pred, mask = model(x, gen())
    target = model.target(x)
    loss = model.masked_mse(pred, target, mask)
    visible_changed = target + (1 - mask)[..., None] * 3.0
    masked_changed = target + mask[..., None] * 3.0
    torch.testing.assert_close(model.masked_mse(pred, visible_changed, mask), loss)
    assert not torch.allclose(model.masked_mse(pred, masked_changed, mask), loss)
    per_patch = (pred - target).pow(2).mean(-1)
    torch.testing.assert_close(loss, per_patch[mask.bool()].mean())


def test_mae_normalised_pixel_target() -> None:
    x, _ = views(2)
    t = create_model("mae", **SMALL_MAE, norm_pix_loss=True).target(x)
    torch.testing.assert_close(t.mean(-1), torch.zeros(2, 49), atol=1e-5, rtol=0)
    raw = create_model("mae", **SMALL_MAE, norm_pix_loss=False)
    torch.testing.assert_close(raw.target(x), raw.patchify(x))


def test_features_and_configuration_errors() -> None:
    x, _ = views(4)
    assert create_model("simclr", encoder="resnet20").forward_features(x).shape == (4, 64)
    assert create_model("mae", **SMALL_MAE).forward_features(x).shape == (4, 32)
    with pytest.raises(ConfigError, match="model.encoder: 'gpt-mini' is not an image classifier"):
        create_model("simclr", encoder="gpt-mini")
    with pytest.raises(ConfigError, match="patch_size"):
        create_model("mae", patch_size=5)
