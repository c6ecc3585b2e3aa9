"""``deepatlas bench resnet``: training throughput of our ResNets against torchvision.models.

- ``resnet18``, ``resnet50``: the ImageNet layout (He et al. 2016a, Table 1; 7x7/2 stem and max
  pool, projection shortcuts) against ``torchvision.models.resnet18`` / ``resnet50``: the same
  network, 11,689,512 and 25,557,032 parameters on both sides, 3 x ``image_size``^2 inputs.
- ``resnet20``: the CIFAR layout (Section 4.2: 3x3 stem, 16/32/64 maps, 3 basic blocks per stage,
  zero-padding shortcuts, "option A", 0.27M parameters) on 3 x 32 x 32 inputs. torchvision has
  no such model, so it runs alone (throughput and MFU), and beside it ``resnet20-b``: ResNet-20
  with 1x1-projection shortcuts ("option B"), ours against the same network assembled from
  torchvision's own ``BasicBlock`` and ``conv1x1`` (that assembly is ours; the blocks, which do
  the work, are torchvision's).

A step is forward, cross-entropy, backward and an SGD update (momentum 0.9, weight decay 1e-4,
torchvision's reference recipe; lr 0.1 per 256 images, He et al.'s 0.1 per 128 for CIFAR). torchvision is an optional extra that must match the installed
torch (PyPI's Linux wheels are CUDA builds): where it does not import, its rows are left out with
:func:`torchvision_missing`'s message and ours are reported alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import create_model
from .common import Build, Contender, Rounds, Setup, same_settings

MODELS = ("resnet20", "resnet20-b", "resnet18", "resnet50")
CIFAR = ("resnet20", "resnet20-b")


@dataclass(frozen=True)
class ResNetBench(Rounds):
    models: tuple[str, ...] = MODELS
    image_size: int = 224  # of the ImageNet-layout models (the CIFAR ones take 32)
    batch_size: int = 8  # of the ImageNet-layout models
    cifar_batch_size: int = 128


def torchvision_missing() -> str | None:
    """None where torchvision imports; else why its rows are skipped and how to get them."""
    try:
        import torchvision.models  # noqa: F401
    except Exception as exc:  # ImportError, or a RuntimeError of a torchvision built for another torch
        return (f"torchvision rows skipped: torchvision does not import here ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); install the torchvision that matches torch "
                f"{torch.__version__.split('+')[0]} (pip install 'deepatlas[bench]', see docs/BENCHMARKS.md). Ours alone:")
    return None


def _torchvision_cifar(depth: int, num_classes: int) -> nn.Module:
    """ResNet-(6n+2), CIFAR layout with option-B shortcuts, from torchvision's BasicBlock, initialised as
    ``torchvision.models.ResNet.__init__`` initialises its networks (He normal, fan_out, for the convolutions;
    batch norms at 1 and 0). Without it the blocks keep PyTorch's default init, and the short training run of
    table (b) compared two initialisations instead of two implementations (1.55 against 0.51 before)."""
    from torchvision.models.resnet import BasicBlock, conv1x1

    n = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
    c_in = 16
    for stage, width in enumerate((16, 32, 64)):
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            down = nn.Sequential(conv1x1(c_in, width, stride), nn.BatchNorm2d(width)) if stride > 1 or c_in != width else None
            layers.append(BasicBlock(c_in, width, stride, down))
            c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    net = nn.Sequential(*layers)
    for m in net.modules():  # what torchvision.models.ResNet does after building its layers
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return net


def model(name: str, side: str, device: torch.device) -> nn.Module:
    """``ours`` or ``torchvision``'s network ``name`` (one of MODELS)."""
    if side == "ours":
        return (create_model("resnet20", shortcut="B") if name == "resnet20-b" else create_model(name)).to(device)
    if name == "resnet20-b":
        return _torchvision_cifar(20, 10).to(device)
    import torchvision.models

    return getattr(torchvision.models, name)().to(device)


def sides(name: str) -> tuple[str, ...]:
    return ("ours",) if name == "resnet20" or torchvision_missing() else ("ours", "torchvision")


def batch_shape(b: ResNetBench, name: str) -> tuple[int, int, int, int]:
    return (b.cifar_batch_size, 3, 32, 32) if name in CIFAR else (b.batch_size, 3, b.image_size, b.image_size)


def builder(b: ResNetBench, name: str, device: torch.device) -> Build:
    """``build(side, setup, seed)`` of ``name`` on one fixed batch."""
    shape = batch_shape(b, name)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(*shape, generator=gen).to(device)
    labels = torch.randint(0, 10 if name in CIFAR else 1000, (shape[0],), generator=gen).to(device)

    def build(side: str, setup: Setup, seed: int) -> Contender:
        torch.manual_seed(seed)
        m = model(name, side, device).train()
        x = images
        if setup.channels_last:
            m, x = m.to(memory_format=torch.channels_last), images.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), lr=0.1 * shape[0] / (128 if name in CIFAR else 256), momentum=0.9, weight_decay=1e-4,
                              fused=setup.fused)
        return Contender(m, lambda net: F.cross_entropy(net(x).float(), labels), opt)

    return build


def run(bench: ResNetBench | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """Per model, one row per precision: images/s and MFU of ours (and torchvision's), the ratio."""
    b = bench or ResNetBench()
    device = device or torch.device("cpu")
    rows = []
    for name in b.models:
        for row in same_settings(builder(b, name, device), sides(name), units=batch_shape(b, name)[0], unit="images",
                                 rounds=b, device=device):
            rows.append({"model": name, **row})
    return rows
