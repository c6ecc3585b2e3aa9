"""open_clip (``open-clip-torch``) as an oracle, and its weights in our CLIP's layout.

open_clip's package ``__init__`` imports its image transforms, and with them torchvision; PyPI's
Linux torchvision wheels are CUDA builds that fail to import next to a CPU build of torch. The
model, its blocks and the loss need no torchvision except one import (``FrozenBatchNorm2d`` in
``open_clip.utils``, used only to freeze a ResNet's BatchNorm). So where torchvision cannot be
imported, the package is opened as a namespace (its ``__init__`` skipped) with a stand-in for that
one name while ``open_clip.model`` and ``open_clip.loss`` are imported; the oracle code is
open_clip's own. No weights are downloaded: the models are built from configs.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch


def _torchvision_imports() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or a CUDA build next to CPU torch (RuntimeError: operator ... does not exist)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True


def open_clip_modules() -> tuple[Any, Any]:
    """(open_clip.model, open_clip.loss); skips the test when open-clip-torch is not installed."""
    if "open_clip.model" in sys.modules:
        return sys.modules["open_clip.model"], sys.modules["open_clip.loss"]
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("oracle tests need open-clip-torch (.ci/run installs it)")
    if _torchvision_imports():
        import open_clip

        return open_clip.model, open_clip.loss
    package = types.ModuleType("open_clip")
    package.__path__ = list(spec.submodule_search_locations)  # a namespace: __init__ (and its transforms) not run
    package.__file__ = str(Path(package.__path__[0]) / "__init__.py")
    package.__spec__ = importlib.machinery.ModuleSpec("open_clip", None, is_package=True)
    package.__spec__.submodule_search_locations = package.__path__
    stand_in = {name: types.ModuleType(name) for name in ("torchvision", "torchvision.ops", "torchvision.ops.misc")}
    stand_in["torchvision.ops.misc"].FrozenBatchNorm2d = torch.nn.BatchNorm2d  # only used to freeze a ResNet
    sys.modules["open_clip"] = package
    importlib.import_module("open_clip.hf_model")  # it asks transformers, which must see the real (absent) torchvision
    sys.modules.update(stand_in)
    try:
        model, loss = importlib.import_module("open_clip.model"), importlib.import_module("open_clip.loss")
    finally:
        for name in stand_in:
            del sys.modules[name]
        for name in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
            del sys.modules[name]  # a half-imported timm (it needs torchvision) must not linger
    return model, loss


def open_clip_to_deepatlas(state: dict[str, torch.Tensor], vision_layers: int, text_layers: int) -> dict[str, torch.Tensor]:
    """An open_clip CLIP's state dict in the names and shapes of :class:`deepatlas.models.clip.CLIP`."""
    out: dict[str, torch.Tensor] = {
        "visual.patch_embed.weight": state["visual.conv1.weight"],
        "visual.cls_token": state["visual.class_embedding"][None, None],
        "visual.pos_embed": state["visual.positional_embedding"][None],
        "image_projection.weight": state["visual.proj"].t(),
        "text.token_embedding.weight": state["token_embedding.weight"],
        "text.positions.weight": state["positional_embedding"],
        "text_projection.weight": state["text_projection"].t(),
        "logit_scale": state["logit_scale"],
    }
    for ours, theirs in (("visual.norm_pre", "visual.ln_pre"), ("visual.norm", "visual.ln_post"), ("text.ln_final", "ln_final")):
        for p in ("weight", "bias"):
            out[f"{ours}.{p}"] = state[f"{theirs}.{p}"]
    blocks = {
        "ln1": "ln_1", "attn.qkv_proj": "attn.in_proj", "attn.out_proj": "attn.out_proj", "ln2": "ln_2",
        "ff.fc1": "mlp.c_fc", "ff.fc2": "mlp.c_proj",
    }
    for ours_prefix, theirs_prefix, layers in (("visual.blocks", "visual.transformer.resblocks", vision_layers),
                                               ("text.blocks", "transformer.resblocks", text_layers)):
        for i in range(layers):
            for ours, theirs in blocks.items():
                for p in ("weight", "bias"):
                    key = f"{theirs_prefix}.{i}.{theirs}_{p}" if theirs == "attn.in_proj" else f"{theirs_prefix}.{i}.{theirs}.{p}"
                    out[f"{ours_prefix}.{i}.{ours}.{p}"] = state[key]
    return {k: v.detach().clone() for k, v in out.items()}
