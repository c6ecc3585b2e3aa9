"""What image classifiers share: ``forward_features`` + ``head``, and the data-bound keys."""

from __future__ import annotations

import torch
from torch import nn

# Config keys a model takes from the dataset it is trained on unless set explicitly.
DATA_BOUND_FIELDS = (
    "in_channels", "num_classes", "input_size", "vocab_size", "pad_id", "bos_id", "eos_id",
    "num_numeric", "cardinalities",  # a table's inputs
    "context", "horizon",  # a series window's length (input_size: its channels) and the steps forecast
    "num_outputs",  # what the task needs the network to output (Task.model_meta)
    "context_length",  # the longest caption of an image-text dataset, in tokens (CLIP)
)


class ImageClassifier(nn.Module):
    """``forward(x) = head(forward_features(x))``.

    ``forward_features`` returns the penultimate representation (the input of
    the final linear layer), shape (B, head.in_features); it is what feature
    extraction, linear probes and Frechet distances use.
    """

    head: nn.Linear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier layer, e.g. to fine-tune on a new label set."""
        self.head = nn.Linear(self.head.in_features, num_classes)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
