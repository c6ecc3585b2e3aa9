"""Checkpoints: one safetensors file holding tensors, with the rest of the state as JSON.

A checkpoint is a nested structure (model and EMA state dicts, optimizer
states, RNG states, counters). :func:`flatten` splits it into named tensors
(stored by safetensors, which never executes code on load) and a JSON
skeleton (stored in the safetensors header under ``deepatlas``) that says where
each tensor goes. The file is written to a temporary name and renamed, so a
crash never leaves half a checkpoint; a human-readable ``.json`` sidecar holds
the same skeleton for inspection (it is never read back).

Every checkpoint records a content hash (``hash`` in the safetensors metadata)
over the skeleton and every tensor's name, dtype, shape and bytes: flipped
bytes in a tensor or in the header are refused on load with a
:class:`CheckpointError` naming the file. The hash catches corruption (a bad
disk, a torn copy, an edit by hand), not an attacker, who can recompute it.
Checkpoints written before the hash existed load with a warning: refusing
them would strand every earlier run's ``resume`` and ``eval``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..io import atomic_path, write_json

FORMAT = "deepatlas-checkpoint/1"
HASH = "sha256"  # faster than blake2b here: OpenSSL uses the CPU's SHA instructions (deepatlas.bench.checkpoint)

log = logging.getLogger(__name__)


def tensor_digest(tensors: Mapping[str, torch.Tensor], header: str = "", algorithm: str = HASH) -> str:
    """``"<algorithm>:<hex>"`` over ``header`` and each tensor (name, dtype, shape, bytes) in name order."""
    h = hashlib.new(algorithm)
    h.update(header.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
    return f"{algorithm}:{h.hexdigest()}"


def verify_digest(path: Path, tensors: Mapping[str, torch.Tensor], header: str, recorded: str | None) -> None:
    """Raise :class:`CheckpointError` when ``recorded`` does not match the content; warn when it is missing."""
    if recorded is None:
        log.warning("%s: written before checkpoints carried a content hash; loading it unverified", path)
        return
    algorithm = recorded.partition(":")[0]
    if algorithm not in hashlib.algorithms_available:
        raise CheckpointError(f"{path}: unknown content hash {algorithm!r}; it was written by a newer deepatlas.")
    if tensor_digest(tensors, header, algorithm) != recorded:
        raise CheckpointError(
            f"{path}: content hash mismatch, the file is corrupted or was modified; "
            "restore it from a copy or train the run again."
        )


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


def save_checkpoint(
    path: str | Path, payload: dict[str, Any], sidecar: bool = True, algorithm: str | None = HASH,
) -> Path:
    """Write ``payload`` atomically to ``path`` (a ``.safetensors`` file).

    ``algorithm``: the content hash (a :mod:`hashlib` name); ``None`` writes none, as deepatlas did
    before hashes (for measuring their cost and testing old checkpoints).
    """
    path = Path(path)
    tensors, skeleton = flatten(payload)
    header = json.dumps(skeleton)
    metadata = {"format": FORMAT, "deepatlas": header}
    if algorithm is not None:
        metadata["hash"] = tensor_digest(tensors, header, algorithm)
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        if sidecar:
            write_json(path.with_suffix(".json"), skeleton)
    except (SafetensorError, OSError) as exc:  # e.g. a full disk: the previous file is untouched
        raise CheckpointError(f"{path}: could not write the checkpoint ({exc}); free disk space and resume.") from None
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
    verify_digest(path, tensors, metadata["deepatlas"], metadata.get("hash"))
    try:
        skeleton = json.loads(metadata["deepatlas"])
        return unflatten(skeleton, tensors)
    except (json.JSONDecodeError, KeyError) as exc:
        raise CheckpointError(f"{path}: checkpoint header is damaged ({exc}).") from None
