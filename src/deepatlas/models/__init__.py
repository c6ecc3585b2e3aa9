"""Model families. Importing this package registers every preset.

Each family file reads top to bottom like the paper's architecture section;
models are pure ``nn.Module``s built from a frozen dataclass config and know
nothing of files, training loops or the CLI.
"""

from . import (
    bert,
    clip,
    cnn,
    densenet,
    efficientnet,
    forecast,
    ft_transformer,
    gan,
    gnn,
    gpt,
    mlp,
    mobilenet,
    resnet,
    rnn,
    rnn_seq2seq,
    segmentation,
    seq2seq,
    ssl,
    tabular,
    unet,
    vae,
    vit,
)
from .base import DATA_BOUND_FIELDS, ImageClassifier, count_parameters

__all__ = [
    "DATA_BOUND_FIELDS", "ImageClassifier", "bert", "clip", "cnn", "count_parameters", "densenet", "efficientnet", "forecast",
    "ft_transformer", "gan", "gnn", "gpt", "mlp", "mobilenet", "resnet", "rnn", "rnn_seq2seq", "segmentation", "seq2seq", "ssl",
    "tabular", "unet", "vae", "vit",
]
