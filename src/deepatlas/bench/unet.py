"""``deepatlas bench unet``: a DDPM training step of our UNet denoiser against diffusers' UNet2DModel.

Both sides are the DDPM UNet (Ho et al. 2020, Appendix B) at the same configuration: a 3x3 stem,
``num_res_blocks`` residual blocks per resolution (GroupNorm, SiLU, conv, a projection of the
time embedding), single-head self-attention at the listed sides, stride-2 convolutions down,
a block-attention-block middle, the mirror image up (nearest upsampling + conv, skips
concatenated, one more block per resolution), a GroupNorm-SiLU-conv head; sinusoidal time
embedding + MLP; a class embedding with an extra "no label" class. diffusers' side is
``UNet2DModel`` (``DownBlock2D``/``AttnDownBlock2D`` by resolution, ``attention_head_dim=None``:
one head, ``num_class_embeds=classes + 1``) with ``DDPMScheduler`` (linear betas 1e-4..0.02,
T = 1000); ours is :class:`deepatlas.models.unet.UNet` under the ``diffusion`` task's own loss
(tasks/diffusion.py with its NoiseScheduler). The parameter counts are equal, to the parameter
(:func:`param_counts`). The default size is the ``ddpm-fashion-mnist`` recipe's (16/32/32
channels, attention at 7x7, batch 64 of 28x28 greyscale images, no dropout).

A step, the same algorithm on both sides: x0 = 2x - 1, t ~ U{0..T-1}, eps ~ N(0, I), the label
dropped with probability 0.1 (classifier-free guidance), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t)
eps, loss = ||eps - model(x_t, t, y)||^2, backward, AdamW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DeepAtlasError
from ..registry import create_model
from .common import Build, Contender, Rounds, Setup, adamw, same_settings


@dataclass(frozen=True)
class UNetBench(Rounds):
    width: int = 16
    multipliers: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_at: tuple[int, ...] = (7,)
    groups: int = 8
    in_channels: int = 1
    input_size: int = 28
    num_classes: int = 10
    batch_size: int = 64
    num_steps: int = 1000
    cond_drop: float = 0.1


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise DeepAtlasError("bench unet compares with diffusers: pip install 'deepatlas[bench]' (diffusers).") from None
    return diffusers


def model(b: UNetBench, side: str, device: torch.device) -> nn.Module:
    """``ours``: our UNet; ``diffusers``: UNet2DModel at the same configuration."""
    if side == "ours":
        return create_model(
            "unet-fashion", in_channels=b.in_channels, input_size=b.input_size, num_classes=b.num_classes, width=b.width,
            multipliers=b.multipliers, num_res_blocks=b.num_res_blocks, attention_at=b.attention_at, groups=b.groups,
            dropout=0.0, conditional=True,
        ).to(device)
    sides = [-(-b.input_size // 2**i) for i in range(len(b.multipliers))]  # the image side at each resolution
    attention = [side in b.attention_at for side in sides]
    return _diffusers().UNet2DModel(
        sample_size=b.input_size, in_channels=b.in_channels, out_channels=b.in_channels,
        block_out_channels=tuple(b.width * m for m in b.multipliers), layers_per_block=b.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        attention_head_dim=None, norm_num_groups=b.groups, dropout=0.0, num_class_embeds=b.num_classes + 1,
    ).to(device)


def param_counts(b: UNetBench) -> dict[str, int]:
    cpu = torch.device("cpu")
    return {side: sum(p.numel() for p in model(b, side, cpu).parameters()) for side in ("ours", "diffusers")}


def builder(b: UNetBench, device: torch.device) -> Build:
    """``build(side, setup, seed)`` on one fixed batch of images in [0, 1] and labels."""
    from ..tasks.diffusion import DiffusionConfig, DiffusionTask

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(b.batch_size, b.in_channels, b.input_size, b.input_size, generator=gen).to(device)
    labels = torch.randint(0, b.num_classes, (b.batch_size,), generator=gen).to(device)

    def build(side: str, setup: Setup, seed: int) -> Contender:
        torch.manual_seed(seed)
        m = model(b, side, device).train()
        x = images.contiguous(memory_format=torch.channels_last) if setup.channels_last else images
        if setup.channels_last:
            m = m.to(memory_format=torch.channels_last)
        if side == "ours":
            task = DiffusionTask(DiffusionConfig(num_steps=b.num_steps, cond_drop=b.cond_drop), {})

            def loss(net: nn.Module) -> torch.Tensor:
                return task.training_step(net, (x, labels), "main").loss
        else:
            scheduler = _diffusers().DDPMScheduler(num_train_timesteps=b.num_steps, beta_schedule="linear")

            def loss(net: nn.Module) -> torch.Tensor:
                x0 = x * 2 - 1
                t = torch.randint(0, b.num_steps, (b.batch_size,), device=device)
                noise = torch.randn_like(x0)
                drop = torch.rand(b.batch_size, device=device) < b.cond_drop
                y = torch.where(drop, torch.full_like(labels, b.num_classes), labels)
                out = net(scheduler.add_noise(x0, noise, t), t, class_labels=y).sample
                return F.mse_loss(out.float(), noise)

        return Contender(m, loss, adamw(m, setup, lr=1e-3))

    return build


def run(bench: UNetBench | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """One row per precision (float32, bf16 autocast): images/s of both, ratio diffusers / ours time, MFU."""
    b = bench or UNetBench()
    device = device or torch.device("cpu")
    return same_settings(builder(b, device), ("ours", "diffusers"), units=b.batch_size, unit="images", rounds=b, device=device)
