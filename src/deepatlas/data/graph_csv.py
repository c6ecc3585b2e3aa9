"""Your own graph: an edge CSV and a node CSV (``graph-csv``).

``edges.csv`` has columns ``source,target[,weight]``, ``nodes.csv`` has
``id,label`` and numeric feature columns (:func:`load_edge_list`). Unlabelled
nodes take part in message passing and are in no split; the labelled nodes are
split into train/val/test masks stratified by class (:func:`stratified_masks`).
The graph is served for node classification (:mod:`.graph_bundles`) or, with
``data.links=true``, link prediction (:mod:`.links`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from ..errors import DataError
from ..schema import option
from .graph import Graph, index_to_mask
from .graph_bundles import NodeGraphData
from .images import show_columns, stratified_split
from .links import LinkData, LinkOptions
from .sampling import SamplingOptions


class EdgeList(NamedTuple):
    """What :func:`load_edge_list` reads: the graph, its class names and the original node ids."""

    graph: Graph
    class_names: list[str]
    node_ids: list[str]


def _read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 -- closed by the generator below
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc}).") from None
    reader = csv.DictReader(f, skipinitialspace=True)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except (csv.Error, UnicodeDecodeError) as exc:
        f.close()
        raise DataError(f"{path}: cannot read as a UTF-8 CSV ({exc}).") from None
    reader.fieldnames = header

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with f:
            try:
                for row in reader:
                    if None in row:
                        raise DataError(f"{path}, row {reader.line_num}: more values than the header's columns.")
                    yield reader.line_num, row
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataError(f"{path}, row {reader.line_num}: cannot parse ({exc}).") from None

    return header, rows()


def _number(value: str | None, path: Path, row: int, column: str) -> float:
    if value is None or not value.strip():
        raise DataError(f"{path}, row {row}, column {column!r}: missing value (expected a number).")
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{path}, row {row}, column {column!r}: {value!r} is not a number.") from None
    if not math.isfinite(number):
        # checked here: a NaN feature would otherwise surface later as a NaN training loss
        raise DataError(f"{path}, row {row}, column {column!r}: {value!r} is not a finite number.")
    return number


def _class_order(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


def stratified_masks(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, torch.Tensor]:
    """Train/val/test node masks over the labelled nodes (label >= 0), each stratified by class.

    The test nodes are drawn with a fixed seed (0) so that every ``seed`` is
    evaluated on the same nodes; ``seed`` draws the validation nodes.
    """
    labelled = np.flatnonzero(labels >= 0)
    keep, test = stratified_split(labels[labelled], test_fraction, seed=0, where="the labelled nodes")
    train, val = stratified_split(labels[labelled][keep], val_fraction, seed, where="the labelled nodes")
    n = len(labels)
    parts = {"train": labelled[keep][train], "val": labelled[keep][val], "test": labelled[test]}
    return {k: index_to_mask(torch.from_numpy(np.sort(v)), n) for k, v in parts.items()}


def load_edge_list(
    edges_csv: str | Path,
    nodes_csv: str | Path,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    undirected: bool = True,
) -> EdgeList:
    """Your graph: ``edges_csv`` with ``source,target[,weight]`` and ``nodes_csv`` with ``id,label,feat...``.

    Node ids are any strings, numbered 0..N-1 in the nodes file's order; every
    column of the nodes file other than ``id`` and ``label`` is a numeric
    feature (none: one constant feature). An empty label marks an unlabelled
    node: it takes part in message passing, has ``y = -1`` and is in no mask.
    Rows are numbered as in a spreadsheet (the header is row 1). With
    ``undirected`` every edge is also added reversed (parallel edges merged).
    """
    nodes_path, edges_path = Path(nodes_csv).expanduser(), Path(edges_csv).expanduser()
    header, rows = _read_csv(nodes_path)
    for column in ("id", "label"):
        if column not in header:
            raise DataError(f"{nodes_path}: no column {column!r} (columns: {show_columns(header)}).")
    feature_columns = [c for c in header if c not in ("id", "label")]
    index: dict[str, int] = {}
    raw_labels, features = [], []
    for row_no, row in rows:
        node = (row["id"] or "").strip()
        if not node:
            raise DataError(f"{nodes_path}, row {row_no}, column 'id': empty node id.")
        if node in index:
            raise DataError(f"{nodes_path}, row {row_no}, column 'id': node {node!r} appears twice.")
        index[node] = len(index)
        raw_labels.append((row["label"] or "").strip())
        features.append([_number(row[c], nodes_path, row_no, c) for c in feature_columns])
    if not index:
        raise DataError(f"{nodes_path}: no nodes.")
    class_names = _class_order({label for label in raw_labels if label})
    if len(class_names) < 2:
        raise DataError(f"{nodes_path}: column 'label' needs at least two classes, found {class_names}.")
    lookup = {name: i for i, name in enumerate(class_names)}
    labels = np.array([lookup[label] if label else -1 for label in raw_labels], dtype=np.int64)

    header, rows = _read_csv(edges_path)
    for column in ("source", "target"):
        if column not in header:
            raise DataError(f"{edges_path}: no column {column!r} (columns: {show_columns(header)}).")
    extra = [c for c in header if c not in ("source", "target", "weight")]
    if extra:
        raise DataError(f"{edges_path}: unexpected columns {extra} (expected source, target and optionally weight).")
    weighted = "weight" in header
    source, target, weight = [], [], []
    for row_no, row in rows:
        for column, out in (("source", source), ("target", target)):
            node = (row[column] or "").strip()
            if node not in index:
                raise DataError(f"{edges_path}, row {row_no}, column {column!r}: node {node!r} is not in {nodes_path}.")
            out.append(index[node])
        if weighted:
            weight.append(_number(row["weight"], edges_path, row_no, "weight"))
    if not source:
        raise DataError(f"{edges_path}: no edges (one row source,target per edge after the header).")
    x = torch.tensor(features, dtype=torch.float32) if feature_columns else torch.ones(len(index), 1)
    graph = Graph(
        x,
        torch.tensor([source, target], dtype=torch.long).reshape(2, -1),
        torch.from_numpy(labels),
        torch.tensor(weight, dtype=torch.float32) if weighted else None,
        stratified_masks(labels, val_fraction, test_fraction, seed),
    )
    return EdgeList(graph.to_undirected() if undirected else graph, class_names, list(index))


# --------------------------------------------------------------------------- the dataset


@dataclass(frozen=True)
class GraphCsvOptions(LinkOptions, SamplingOptions):
    """Options of your graph as CSV files."""

    path: Optional[str] = option(None, "edges CSV with columns source, target and optionally weight")
    nodes_path: Optional[str] = option(None, "nodes CSV with columns id, label and numeric features")
    test_fraction: float = option(0.2, "fraction of labelled nodes held out for testing (fixed seed)", low=0.0, high=0.9)
    undirected: bool = option(True, "add every edge in the reverse direction too")
    normalize_features: bool = option(False, "divide each node's features by their sum")


def _row_normalized(graph: Graph) -> Graph:
    rowsum = graph.x.sum(1, keepdim=True)
    x = torch.where(rowsum != 0, graph.x / torch.where(rowsum != 0, rowsum, 1), 0)
    return Graph(x, graph.edge_index, graph.y, graph.edge_weight, graph.masks)


def load_graph_csv(config: Any, state_dir: Path | None = None) -> NodeGraphData:
    opts: GraphCsvOptions = config.options
    if not opts.path or not opts.nodes_path:
        raise DataError("data.path, data.nodes_path: graph-csv needs an edges CSV and a nodes CSV.")
    graph, class_names, _ = load_edge_list(
        opts.path, opts.nodes_path, val_fraction=config.val_fraction, test_fraction=opts.test_fraction,
        seed=config.split_seed, undirected=opts.undirected,
    )
    if opts.normalize_features:
        graph = _row_normalized(graph)
    if opts.links:
        return LinkData(f"graph-csv:{opts.path}", graph, config)  # type: ignore[return-value]
    return NodeGraphData(f"graph-csv:{opts.path}", graph, class_names, config)


__all__ = ["EdgeList", "GraphCsvOptions", "load_edge_list", "load_graph_csv", "stratified_masks"]
