"""Where an encoder-decoder looked: attention weights as heatmaps, source across, output down."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .plots import _figure, _save


def plot_attention(
    weights: Sequence[np.ndarray], sources: Sequence[Sequence[str]], outputs: Sequence[Sequence[str]], path: str | Path,
    title: str = "",
) -> Path:
    """One panel per example: weights (output tokens, source tokens), each row summing to 1; darker = more."""
    n = len(weights)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = _figure(rows, cols, figsize=(6.0 * cols, 6.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, w, src, out in zip(axes.flat, weights, sources, outputs, strict=False):
        image = ax.imshow(w, cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
        ax.set_xticks(range(len(src)), src, fontsize=7)
        ax.set_yticks(range(len(out)), out, fontsize=7)
        ax.tick_params(length=0)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight")
    fig.suptitle(title)
    return _save(fig, path)


def _labeller(meta: Any) -> Callable[[int], str]:
    decode = meta.get("_decode")
    eos = int(meta.get("eos_id", 2))

    def label(token: int) -> str:
        if token == eos:
            return "EOS"
        if decode is None:
            return str(token)
        import torch

        text = decode(torch.tensor([token]))
        return "\u2423" if text == " " else (text or "?")  # a visible space

    return label


def attention_figures(task: Any, model: Any, batch: Any, folder: Path, split: str, examples: int = 4) -> list[Path]:
    """``attention-<split>.png``: the greedy outputs of a batch's first ``examples`` sources and the
    attention weights behind each output token (models with ``attention(src, max_len)``)."""
    if batch is None or not getattr(model, "returns_attention", False):
        return []
    src = batch[0][:examples]
    pad = int(task.meta.get("pad_id", 0))
    tokens, weights = model.attention(src, task.decode_length(src))
    label = _labeller(task.meta)
    panels, sources, outputs = [], [], []
    for s, t, w in zip(src.tolist(), tokens.tolist(), weights.float().cpu().numpy(), strict=True):
        n_src = max(1, sum(token != pad for token in s))
        n_out = max(1, int((w.sum(1) > 0).sum()))  # up to and including [EOS]
        panels.append(w[:n_out, :n_src])
        sources.append([label(token) for token in s[:n_src]])
        outputs.append([label(token) for token in t[:n_out]])
    path = Path(folder) / f"attention-{split}.png"
    return [plot_attention(panels, sources, outputs, path, title=f"{Path(folder).name} ({split}, greedy decoding)")]
