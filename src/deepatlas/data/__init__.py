"""Datasets: built-in ones and readers for the user's own data.

``load_dataset(config.data)`` returns a data bundle with ``meta`` (classes,
channels, input size), ``train_batches``/``eval_batches`` and content
``fingerprints``. Registering a dataset: ``DATASETS.register(name, loader,
OptionsDataclass(), data_kinds=("labelled", "images"))``: the kinds of data it
serves, matched against the task's ``data_kind`` when a recipe is loaded.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from ..registry import DATASETS
from .captions import (
    CaptionData,
    CaptionOptions,
    ImageCaptionsOptions,
    load_fashion_mnist_captions,
    load_image_captions,
)
from .graph_atlas import GraphAtlasOptions, load_graph_atlas
from .graph_csv import GraphCsvOptions, load_graph_csv
from .images import ImageData, ImageFolderOptions, ImageOptions, ImageSplit
from .planetoid import PlanetoidOptions, load_planetoid_data
from .segmentation import (
    SegmentationData,
    SegmentationFolderOptions,
    ShapesOptions,
    load_segmentation_folder,
    load_shapes,
)
from .seq2seq import ReverseOptions, TextPairsOptions, load_reverse, load_text_pairs
from .series import SeriesData, SeriesFileOptions, SeriesFrameOptions
from .series_sources import BUILTIN as SERIES
from .series_sources import load_builtin_series, load_series_csv, load_series_frame
from .sources import load_digits, load_fashion_mnist, load_image_folder
from .tabular import TabularBatch, TabularData, TabularOptions
from .tabular_sources import BUILTIN as TABLES
from .tabular_sources import (
    FrameOptions,
    TabularFileOptions,
    load_builtin,
    load_frame,
    load_table,
    register_frame,
)
from .text import (
    StreamBatch,
    TextData,
    TextFileOptions,
    TextOptions,
    load_text,
    load_tiny_shakespeare,
)
from .text_classification import SpeakersOptions, TextCsvOptions, load_speakers, load_text_csv

DATASETS.register(
    "digits", load_digits, ImageOptions(), family="image", data_kinds=("labelled", "images"),
    doc="scikit-learn's 8x8 handwritten digits, 1,797 images, 10 classes (embedded)",
)
DATASETS.register(
    "fashion-mnist", load_fashion_mnist, ImageOptions(), family="image", data_kinds=("labelled", "images"),
    doc="Fashion-MNIST, 70,000 28x28 greyscale images of clothing, 10 classes",
)
DATASETS.register(
    "image-folder", load_image_folder, ImageFolderOptions(), family="image", data_kinds=("labelled", "images"),
    doc="your images: data.path=/folder with one sub-folder of PNG/JPEG files per class",
)
DATASETS.register(
    "shapes", load_shapes, ShapesOptions(), family="segmentation", data_kinds=("segmentation",),
    doc="synthetic circles, squares and triangles on textured backgrounds, 2,000 + 500 64x64 images, 4 classes per pixel",
)
DATASETS.register(
    "segmentation-folder", load_segmentation_folder, SegmentationFolderOptions(), family="segmentation",
    data_kinds=("segmentation",), doc="your images and label maps: data.path=/folder with images/ and masks/ (PNG, same stems)",
)
DATASETS.register(
    "fashion-mnist-captions", load_fashion_mnist_captions, CaptionOptions(), family="image-text", data_kinds=("image-text",),
    doc="Fashion-MNIST with generated captions; evaluation and zero-shot prompts use held-out templates (CLIP)",
)
DATASETS.register(
    "image-captions", load_image_captions, ImageCaptionsOptions(), family="image-text", data_kinds=("image-text",),
    doc="your image-caption pairs: data.path=pairs.csv with image and caption columns (CLIP)",
)
DATASETS.register(
    "tiny-shakespeare", load_tiny_shakespeare, TextOptions(), family="text", data_kinds=("tokens",),
    doc="Tiny Shakespeare, 1.1M characters (Karpathy's char-rnn corpus); language modelling",
)
DATASETS.register(
    "text", load_text, TextFileOptions(), family="text", data_kinds=("tokens",),
    doc="your text: data.path=file.txt or a folder of .txt files; language modelling",
)

DATASETS.register(
    "shakespeare-speakers", load_speakers, SpeakersOptions(), family="text-classification", data_kinds=("labelled",),
    doc="who speaks? utterances of Tiny Shakespeare's most frequent speakers (text classification)",
)
DATASETS.register(
    "text-csv", load_text_csv, TextCsvOptions(), family="text-classification", data_kinds=("labelled",),
    doc="your labelled text: data.path=file.csv with text and label columns",
)

DATASETS.register(
    "shakespeare-reverse", load_reverse, ReverseOptions(), family="seq2seq", data_kinds=("pairs",),
    doc="lines of Tiny Shakespeare to their reversal (or, transform=recase, their capitals restored)",
)
DATASETS.register(
    "text-pairs", load_text_pairs, TextPairsOptions(), family="seq2seq", data_kinds=("pairs",),
    doc="your sequence pairs: data.path=file of source<TAB>target lines",
)

DATASETS.register(
    "cora", partial(load_planetoid_data, "cora"), PlanetoidOptions(), family="graph", data_kinds=("graph",),
    doc="Cora citation graph, 2,708 papers, 7 classes, public split 140/500/1000 (node classification)",
)
DATASETS.register(
    "citeseer", partial(load_planetoid_data, "citeseer"), PlanetoidOptions(), family="graph", data_kinds=("graph",),
    doc="CiteSeer citation graph, 3,327 papers, 6 classes, public split 120/500/1000 (node classification)",
)
DATASETS.register(
    "pubmed", partial(load_planetoid_data, "pubmed"), PlanetoidOptions(), family="graph", data_kinds=("graph",),
    doc="PubMed citation graph, 19,717 papers, 3 classes, public split 60/500/1000 (node classification)",
)
DATASETS.register(
    "graph-csv", load_graph_csv, GraphCsvOptions(), family="graph", data_kinds=("graph",),
    doc="your graph: data.path=edges.csv (source,target[,weight]), data.nodes_path=nodes.csv (id,label,features...)",
)
DATASETS.register(
    "graph-atlas", load_graph_atlas, GraphAtlasOptions(), family="graph", data_kinds=("graphs",),
    doc="994 connected graphs of 3-7 nodes (networkx atlas): has a triangle / is bipartite / has a 4-cycle",
)

for _name, (_, _doc, _kind) in TABLES.items():
    DATASETS.register(_name, partial(load_builtin, _name), TabularOptions(), family="tabular", data_kinds=(_kind,), doc=_doc)
DATASETS.register(
    "table", load_table, TabularFileOptions(), family="tabular", data_kinds=("labelled", "tabular", "survival"),
    doc="your table: data.path=rows.csv (or .parquet) data.target=column (survival: also data.event=column)",
)
DATASETS.register(
    "dataframe", load_frame, FrameOptions(), family="tabular", data_kinds=("labelled", "tabular", "survival"),
    doc="a pandas DataFrame of this Python process: data.frame=deepatlas.data.register_frame(df)",
)

for _name, _series in SERIES.items():
    DATASETS.register(_name, partial(load_builtin_series, _name), _series.options, family="series", data_kinds=("series",), doc=_series.doc)
DATASETS.register(
    "series-csv", load_series_csv, SeriesFileOptions(), family="series", data_kinds=("series",),
    doc="your series: data.path=rows.csv data.value=column [data.time, data.series_id, data.covariates=[...]]",
)
DATASETS.register(
    "series-frame", load_series_frame, SeriesFrameOptions(), family="series", data_kinds=("series",),
    doc="a pandas DataFrame of this process in long format: data.frame=deepatlas.data.register_frame(df) data.value=column",
)


def load_dataset(config: Any, state_dir: Path | None = None) -> Any:
    """Load the dataset a :class:`~deepatlas.config.DataConfig` describes.

    ``state_dir`` is a run folder: what the run saved (e.g. its tokenizer) is reused.
    """
    from ..config import DataConfig
    from ..schema import parse

    if isinstance(config, str):  # load_dataset("digits")
        config = parse(DataConfig, {"name": config}, "data")
        entry = DATASETS.get(config.name, "data.name")
        config = type(config)(**{**config.__dict__, "options": entry.config})
    entry = DATASETS.get(config.name, "data.name")
    return entry.factory(config, state_dir=state_dir)


__all__ = [
    "CaptionData",
    "ImageData",
    "ImageFolderOptions",
    "ImageOptions",
    "ImageSplit",
    "SegmentationData",
    "SeriesData",
    "StreamBatch",
    "TabularBatch",
    "TabularData",
    "TextData",
    "TextFileOptions",
    "TextOptions",
    "load_dataset",
    "register_frame",
]
