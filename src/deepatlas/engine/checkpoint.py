"""Checkpoints: one safetensors file holding tensors, with the rest of the state as JSON.

A checkpoint is a nested structure (model and EMA state dicts, optimizer
states, RNG states, counters). :func:`flatten` splits it into named tensors
(stored by safetensors, which never executes code on load) and a JSON
skeleton (stored in the safetensors header under ``deepatlas``) that says where
each tensor goes. The file is written to a temporary name and renamed, so a
crash never leaves half a checkpoint; a human-readable ``.json`` sidecar holds
the same skeleton for inspection.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..io import atomic_path, write_json

FORMAT = "deepatlas-checkpoint/1"


def flatten(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split ``obj`` into ``{key: tensor}`` and a JSON-able skeleton referencing the keys."""
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, int, tuple[int, ...], tuple[int, ...], torch.dtype], str] = {}
    storages: set[int] = set()

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            t = node.detach().cpu()
            ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if ident in seen:  # the same tensor under two names (tied weights): store once
                return {"__tensor__": seen[ident]}
            if t.untyped_storage().data_ptr() in storages or not t.is_contiguous():
                t = t.contiguous().clone()  # safetensors refuses overlapping storage
            storages.add(t.untyped_storage().data_ptr())
            seen[ident] = path
            tensors[path] = t
            return {"__tensor__": path}
        if isinstance(node, dict):
            if all(isinstance(k, str) for k in node):
                return {k: walk(v, f"{path}.{k}" if path else k) for k, v in node.items()}
            return {"__items__": [[k, walk(v, f"{path}.{k}")] for k, v in node.items()]}
        if isinstance(node, tuple):
            return {"__tuple__": [walk(v, f"{path}.{i}") for i, v in enumerate(node)]}
        if isinstance(node, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(node)]
        if isinstance(node, float) and not math.isfinite(node):
            return {"__float__": repr(node)}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot checkpoint {type(node).__name__} at {path!r}")

    return tensors, walk(obj, "")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__items__" in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton["__items__"]}
        if "__tuple__" in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton["__tuple__"])
        if "__float__" in skeleton:
            return float(skeleton["__float__"])
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def save_checkpoint(path: str | Path, payload: dict[str, Any], sidecar: bool = True) -> Path:
    """Write ``payload`` atomically to ``path`` (a ``.safetensors`` file)."""
    path = Path(path)
    tensors, skeleton = flatten(payload)
    header = json.dumps(skeleton)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "deepatlas": header})
    if sidecar:
        write_json(path.with_suffix(".json"), skeleton)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found.")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc}).") from None
    if metadata.get("format") != FORMAT or "deepatlas" not in metadata:
        raise CheckpointError(f"{path}: not a deepatlas checkpoint (format {metadata.get('format')!r}).")
    try:
        skeleton = json.loads(metadata["deepatlas"])
        return unflatten(skeleton, tensors)
    except (json.JSONDecodeError, KeyError) as exc:
        raise CheckpointError(f"{path}: checkpoint header is damaged ({exc}).") from None
