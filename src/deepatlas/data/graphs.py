"""Graph data: a COO graph structure, batching, Planetoid, your own edge lists, the graph atlas.

A :class:`Graph` holds node features ``x`` (N, F), a COO ``edge_index`` (2, E)
in PyG's convention (row 0 the source, row 1 the target: a message flows
``edge_index[0] -> edge_index[1]``), optional ``edge_weight`` (E,), labels ``y``
and boolean node ``masks``. Its adjacency is ``A[target, source] = weight`` so
that ``A @ X`` sums each node's incoming messages (Kipf & Welling, 2017, eq. 2
before normalisation).

Node classification (full batch):
- ``cora``, ``citeseer``, ``pubmed``: the Planetoid citation graphs (Yang,
  Cohen & Salakhutdinov, 2016) with the public split used by GCN (Kipf &
  Welling, 2017) and PyG's ``Planetoid(split="public")``: 20 training nodes per
  class (the first ``len(y)`` nodes), the next 500 for validation, the 1,000
  ``test.index`` nodes for testing. CiteSeer's 15 test-range nodes without
  features get zero features and label 0, and are in no split. Edges are made
  undirected, deduplicated, without self loops (Cora: 5,278 undirected edges =
  10,556 entries of ``edge_index``). ``normalize_features`` divides each
  feature row by its sum as Kipf's ``preprocess_features`` does (a zero row
  stays zero). Class names are indices: the files do not record them.
- ``graph-csv``: your graph, an edge CSV and a node CSV (:func:`load_edge_list`).

Graph classification (mini-batches of whole graphs):
- ``graph-atlas``: every connected graph of 3 to 7 nodes from the Atlas of
  Graphs (Read & Wilson, 1998; ``networkx.graph_atlas_g``), 994 graphs, with
  constant node features so that structure alone decides the label, the
  setting where GIN's expressivity matters (Xu et al., 2019). Graphs by size:
  2, 6, 21, 112 and 853 of 3..7 nodes. Labels, with the class balance:
  ``triangle`` (contains a triangle) 906 yes / 88 no; ``bipartite`` 70 yes /
  924 no (the 18 graphs that are neither bipartite nor have a triangle hold a
  5- or 7-cycle); ``cycle4`` (contains a 4-cycle as a subgraph) 905 yes / 89
  no. The classes are imbalanced (about 91% / 9%): the majority-class
  baseline is 91.1%, 93.0% and 91.0% accuracy, so compare against it (or
  read per-class recall) rather than against 50%. The test split is fold
  ``fold`` of a stratified ``folds``-fold split seeded by ``seed``; the
  validation split is a stratified ``data.val_fraction`` of the remaining
  folds drawn with ``data.split_seed`` (so the test fold never informs early
  stopping or model selection).

Planetoid files are Python-2 pickles. They are verified against their sha256
before being read, and then read with :class:`RestrictedUnpickler`, which
resolves only the numpy/scipy/builtin names those files use: any other global
is refused before anything is called.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import pickle
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..io import derive_seed
from ..schema import option
from .bundle import SplitBundle
from .download import cache_dir, check_sha256, data_roots, download, find_file, read_maybe_gzip
from .images import stratified_split
from .links import LinkData, LinkOptions
from .sampling import NeighborSampler, SamplingOptions

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the Graph structure


def _index_to_mask(index: torch.Tensor, size: int) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[index] = True
    return mask


def _unique_edges(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Positions of the first occurrence of each (source, target) pair, in input order."""
    key = edge_index[0] * max(num_nodes, 1) + edge_index[1]
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1 if len(inverse) else 0,), len(key), device=key.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(key), device=key.device), reduce="amin")
    return first.sort().values


@dataclass
class Graph:
    """One graph, or a batch of graphs made by :func:`batch_graphs`.

    ``y`` holds node labels (N,) or, for graph classification, one 0-dim graph
    label (a batch stacks them to (G,)). ``batch`` (N,) gives each node's graph
    and ``ptr`` (G + 1,) the node offsets of each graph in a batch.
    """

    x: torch.Tensor  # (N, F) float
    edge_index: torch.Tensor  # (2, E) long: row 0 source, row 1 target
    y: Optional[torch.Tensor] = None
    edge_weight: Optional[torch.Tensor] = None  # (E,)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) bool
    batch: Optional[torch.Tensor] = None  # (N,) long
    ptr: Optional[torch.Tensor] = None  # (G + 1,) long

    def __post_init__(self) -> None:
        if self.x.dim() != 2:
            raise ValueError(f"Graph.x must be (N, F), got shape {tuple(self.x.shape)}")
        if self.edge_index.dim() != 2 or self.edge_index.shape[0] != 2:
            raise ValueError(f"Graph.edge_index must be (2, E), got shape {tuple(self.edge_index.shape)}")
        if self.edge_weight is not None and self.edge_weight.shape != (self.edge_index.shape[1],):
            raise ValueError("Graph.edge_weight must have one value per edge")

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        """Entries of ``edge_index``: an undirected edge counts once in each direction."""
        return int(self.edge_index.shape[1])

    @property
    def num_graphs(self) -> int:
        return 1 if self.ptr is None else len(self.ptr) - 1

    def to(self, device: torch.device | str) -> Graph:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Graph(
            self.x.to(device, non_blocking=True), self.edge_index.to(device, non_blocking=True), move(self.y),
            move(self.edge_weight), {k: v.to(device) for k, v in self.masks.items()}, move(self.batch), move(self.ptr),
        )

    def to_csr(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(crow_indices (N+1,), col_indices (E,), values (E,))`` of ``A[target, source]``.

        Entries are sorted by target, then source; parallel edges stay separate
        entries (a product ``A @ X`` sums them).
        """
        source, target = self.edge_index
        n = self.num_nodes
        order = torch.argsort(target * max(n, 1) + source, stable=True)
        counts = torch.bincount(target, minlength=n)
        crow = torch.zeros(n + 1, dtype=torch.long, device=counts.device)
        crow[1:] = torch.cumsum(counts, 0)
        values = self.edge_weight if self.edge_weight is not None else torch.ones(
            self.num_edges, dtype=self.x.dtype if self.x.is_floating_point() else torch.float32, device=source.device
        )
        return crow, source[order], values[order]

    def to_sparse(self) -> torch.Tensor:
        """The (N, N) adjacency ``A[target, source]`` as a ``torch.sparse_csr_tensor``."""
        crow, col, values = self.to_csr()
        n = self.num_nodes
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(crow, col, values, size=(n, n), check_invariants=False)  # valid as built

    def to_undirected(self) -> Graph:
        """Every edge in both directions, parallel edges merged.

        An edge present in both directions keeps each direction's weight; a
        one-way edge gives its reverse the same weight; of parallel edges the
        first wins. Self loops are kept once.
        """
        both = torch.cat([self.edge_index, self.edge_index.flip(0)], dim=1)
        keep = _unique_edges(both, self.num_nodes)
        weight = None if self.edge_weight is None else torch.cat([self.edge_weight, self.edge_weight])[keep]
        return Graph(self.x, both[:, keep], self.y, weight, dict(self.masks), self.batch, self.ptr)

    def fingerprint(self) -> str:
        """sha256 of the content: features, edges, weights, labels and masks, in order."""
        h = hashlib.sha256()
        parts = [("x", self.x), ("edge_index", self.edge_index), ("edge_weight", self.edge_weight), ("y", self.y)]
        parts += [(f"mask:{k}", self.masks[k]) for k in sorted(self.masks)]
        for name, t in parts:
            if t is None:
                continue
            t = t.detach().cpu().contiguous()
            h.update(repr((name, str(t.dtype), tuple(t.shape))).encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()


def batch_graphs(graphs: Sequence[Graph]) -> Graph:
    """One block-diagonal graph of ``graphs``, with ``batch`` (N,) and ``ptr`` (G + 1,).

    Edge indices are offset by the nodes of the graphs before. Graph labels
    (0-dim ``y``) are stacked to (G,); node labels are concatenated.
    """
    if not graphs:
        raise ValueError("batch_graphs needs at least one graph")
    device = graphs[0].x.device
    sizes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long, device=device)
    ptr = torch.zeros(len(graphs) + 1, dtype=torch.long, device=device)
    ptr[1:] = torch.cumsum(sizes, 0)
    edge_index = torch.cat([g.edge_index + ptr[i] for i, g in enumerate(graphs)], dim=1)
    weights = [g.edge_weight for g in graphs]
    if any(w is None for w in weights) and not all(w is None for w in weights):
        raise ValueError("batch_graphs: either every graph has edge_weight or none has")
    edge_weight = None if weights[0] is None else torch.cat(weights)  # type: ignore[arg-type]
    labels = [g.y for g in graphs]
    if all(y is None for y in labels):
        y = None
    elif any(y is None for y in labels):
        raise ValueError("batch_graphs: either every graph has y or none has")
    elif all(y.dim() == 0 for y in labels):  # type: ignore[union-attr]
        y = torch.stack(labels)  # type: ignore[arg-type]
    else:
        y = torch.cat(labels)  # type: ignore[arg-type]
    names = set(graphs[0].masks)
    masks = {k: torch.cat([g.masks[k] for g in graphs]) for k in names if all(k in g.masks for g in graphs)}
    batch = torch.repeat_interleave(torch.arange(len(graphs), device=device), sizes)
    return Graph(torch.cat([g.x for g in graphs]), edge_index, y, edge_weight, masks, batch, ptr)


# --------------------------------------------------------------------------- restricted unpickling


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only names a Planetoid pickle may resolve, under each module path they were saved from."""
    import scipy.sparse

    reconstruct = np.zeros(0).__reduce__()[0]  # numpy(._core|.core).multiarray._reconstruct
    scalar = np.int64(0).__reduce__()[0]  # numpy scalars (e.g. a node id saved as numpy.int64)
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "defaultdict"): defaultdict,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("scipy.sparse", "scipy.sparse.csr", "scipy.sparse._csr"):
        allowed[(module, "csr_matrix")] = scipy.sparse.csr_matrix
    for cls in (list, set, frozenset, dict, tuple, int, float, str, bytes):
        allowed[("builtins", cls.__name__)] = cls
        allowed[("__builtin__", cls.__name__)] = cls  # Python 2 module name
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed numpy/scipy/builtin classes.

    ``find_class`` is where a pickle names the callables it will invoke; a name
    outside :func:`_allowed_globals` raises :class:`DataError` there, before
    anything is called.
    """

    def __init__(self, file: io.BytesIO, path: Path) -> None:
        super().__init__(file, encoding="latin1")  # Python-2 pickles: str bytes -> latin1
        self.path = path
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.path}: refused to unpickle global {module}.{name} (only numpy arrays, scipy CSR "
                "matrices and plain containers are allowed); the file is not a Planetoid data file."
            ) from None


def safe_unpickle(content: bytes, path: Path) -> Any:
    """Unpickle ``content`` (read from ``path``) with :class:`RestrictedUnpickler`."""
    try:
        return RestrictedUnpickler(io.BytesIO(content), path).load()
    except DataError:
        raise
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean the same to the user
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}).") from None


# --------------------------------------------------------------------------- Planetoid

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data/"
PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
# sha256 of the files in kimiyoung/planetoid's data/ folder (the files PyG's Planetoid downloads).
# Cora's and CiteSeer's are checked against the offline copies by the tests; PubMed's are the values
# public projects pin for the same files, not checked here (no offline copy).
PLANETOID_SHA256 = {
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    "ind.pubmed.allx": "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
    "ind.pubmed.ally": "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
    "ind.pubmed.graph": "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
    "ind.pubmed.test.index": "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5",
    "ind.pubmed.tx": "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
    "ind.pubmed.ty": "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
    "ind.pubmed.x": "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
    "ind.pubmed.y": "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
}
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


def planetoid_file(name: str, part: str, root: str | None = None) -> tuple[Path, bytes]:
    """Find (or download) and verify ``ind.<name>.<part>``: its path and bytes.

    Searched in ``<data dir>/planetoid/``, ``<data dir>/<Name>/raw/`` (PyG's
    layout), ``<data dir>/``, then the download cache; downloaded last.
    """
    filename = f"ind.{name}.{part}"
    expected = PLANETOID_SHA256[filename]
    folders = []
    for base in data_roots(root):
        folders += [base / "planetoid", base / PLANETOID_NAMES[name] / "raw", base]
    folders.append(cache_dir() / "planetoid")
    path = find_file([filename], folders)
    if path is None:
        path = download(PLANETOID_URL + filename, cache_dir() / "planetoid" / filename, sha256_of_content=expected)
    content = read_maybe_gzip(path)
    check_sha256(path, content, expected)
    return path, content


def _dense(obj: Any, path: Path, rows: int | None = None) -> np.ndarray:
    import scipy.sparse

    if scipy.sparse.issparse(obj):
        obj = obj.toarray()
    if not isinstance(obj, np.ndarray) or obj.ndim != 2:
        raise DataError(f"{path}: expected a 2-d matrix, found {type(obj).__name__}.")
    if rows is not None and obj.shape[0] != rows:
        raise DataError(f"{path}: has {obj.shape[0]} rows, expected {rows}.")
    return obj.astype(np.float32)


def _one_hot_labels(y: np.ndarray, path: Path) -> np.ndarray:
    if not np.isin(y, (0, 1)).all() or (y.sum(1) > 1).any():
        raise DataError(f"{path}: labels are not one-hot rows.")
    return y.argmax(1)  # a zero row (a padded CiteSeer node) is class 0, as in PyG


def _read_test_index(path: Path, content: bytes) -> np.ndarray:
    values = []
    for line_no, line in enumerate(content.decode("ascii", errors="replace").splitlines(), start=1):
        if line.strip():
            try:
                values.append(int(line))
            except ValueError:
                raise DataError(f"{path}, line {line_no}: {line.strip()!r} is not a node index.") from None
    return np.asarray(values, dtype=np.int64)


def _planetoid_edges(graph: Any, path: Path, num_nodes: int) -> torch.Tensor:
    if not isinstance(graph, dict):
        raise DataError(f"{path}: expected a dict of adjacency lists, found {type(graph).__name__}.")
    source, target = [], []
    for node, neighbours in graph.items():
        if not isinstance(node, (int, np.integer)) or not isinstance(neighbours, (list, tuple, set)):
            raise DataError(f"{path}: entry {node!r} is not a node id with a list of neighbours.")
        source += [int(node)] * len(neighbours)
        target += [int(v) for v in neighbours]
    edge_index = torch.tensor([source, target], dtype=torch.long).reshape(2, -1)
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise DataError(f"{path}: node ids outside 0..{num_nodes - 1}.")
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]  # the files hold a few self loops
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    key = torch.unique(both[0] * num_nodes + both[1])  # sorted by source, then target
    return torch.stack([key // num_nodes, key % num_nodes])


def load_planetoid(name: str, root: str | None = None, normalize_features: bool = False) -> Graph:
    """Cora, CiteSeer or PubMed with the public split, as PyG's ``Planetoid(split="public")``.

    Returns a :class:`Graph` with ``masks`` ``train`` (20 per class), ``val``
    (500) and ``test`` (1,000).
    """
    name = name.lower()
    if name not in PLANETOID_NAMES:
        raise DataError(f"unknown Planetoid dataset {name!r} (cora, citeseer, pubmed).")
    paths, objects = {}, {}
    for part in PLANETOID_PARTS:
        paths[part], content = planetoid_file(name, part, root)
        objects[part] = _read_test_index(paths[part], content) if part == "test.index" else safe_unpickle(
            content, paths[part]
        )
    y, ty, ally = (_dense(objects[p], paths[p]) for p in ("y", "ty", "ally"))
    x = _dense(objects["x"], paths["x"], rows=len(y))
    tx = _dense(objects["tx"], paths["tx"], rows=len(ty))
    allx = _dense(objects["allx"], paths["allx"], rows=len(ally))
    test_index = objects["test.index"]
    if len(test_index) != len(tx):
        raise DataError(f"{paths['test.index']}: {len(test_index)} test nodes but {paths['tx']} has {len(tx)} rows.")
    if len(test_index) and test_index.min() < len(allx):
        raise DataError(f"{paths['test.index']}: test node {test_index.min()} lies among the {len(allx)} allx nodes.")
    if len({x.shape[1], tx.shape[1], allx.shape[1]}) != 1:
        raise DataError(f"{paths['x']}: feature dimensions of x, tx and allx differ.")
    # Test nodes are numbered after allx; tx row j is node test_index[j]. Indices missing from the
    # test range (15 isolated CiteSeer nodes) get zero features and a zero label row (Kipf's code).
    n = max(len(allx), int(test_index.max()) + 1 if len(test_index) else 0)
    features = np.zeros((n, allx.shape[1]), dtype=np.float32)
    features[: len(allx)], features[test_index] = allx, tx
    labels = np.zeros(n, dtype=np.int64)
    labels[: len(ally)] = _one_hot_labels(ally, paths["ally"])
    labels[test_index] = _one_hot_labels(ty, paths["ty"])
    if normalize_features:
        rowsum = features.sum(1, keepdims=True)
        features = np.divide(features, rowsum, out=np.zeros_like(features), where=rowsum != 0)
    masks = {
        "train": _index_to_mask(torch.arange(len(y)), n),
        "val": _index_to_mask(torch.arange(len(y), min(len(y) + 500, n)), n),
        "test": _index_to_mask(torch.from_numpy(test_index), n),
    }
    edge_index = _planetoid_edges(objects["graph"], paths["graph"], n)
    return Graph(torch.from_numpy(features), edge_index, torch.from_numpy(labels), masks=masks)


# --------------------------------------------------------------------------- your own graph (CSV)


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
        return float(value)
    except ValueError:
        raise DataError(f"{path}, row {row}, column {column!r}: {value!r} is not a number.") from None


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
    keep, test = stratified_split(labels[labelled], test_fraction, seed=0)
    train, val = stratified_split(labels[labelled][keep], val_fraction, seed)
    n = len(labels)
    parts = {"train": labelled[keep][train], "val": labelled[keep][val], "test": labelled[test]}
    return {k: _index_to_mask(torch.from_numpy(np.sort(v)), n) for k, v in parts.items()}


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
            raise DataError(f"{nodes_path}: no column {column!r} (columns: {', '.join(header) or 'none'}).")
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
            raise DataError(f"{edges_path}: no column {column!r} (columns: {', '.join(header) or 'none'}).")
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
    x = torch.tensor(features, dtype=torch.float32) if feature_columns else torch.ones(len(index), 1)
    graph = Graph(
        x,
        torch.tensor([source, target], dtype=torch.long).reshape(2, -1),
        torch.from_numpy(labels),
        torch.tensor(weight, dtype=torch.float32) if weighted else None,
        stratified_masks(labels, val_fraction, test_fraction, seed),
    )
    return EdgeList(graph.to_undirected() if undirected else graph, class_names, list(index))


# --------------------------------------------------------------------------- graph atlas

ATLAS_LABELS = {
    "triangle": ("no triangle", "triangle"),
    "bipartite": ("not bipartite", "bipartite"),
    "cycle4": ("no 4-cycle", "4-cycle"),
}


def _atlas_label(adjacency: np.ndarray, label: str) -> int:
    if label == "triangle":  # trace(A^3) counts each triangle 6 times
        return int(np.trace(np.linalg.matrix_power(adjacency, 3)) > 0)
    if label == "cycle4":  # a 4-cycle u-a-v-b exists iff two distinct nodes share two neighbours
        common = adjacency @ adjacency
        np.fill_diagonal(common, 0)
        return int((common >= 2).any())
    import networkx as nx

    return int(nx.is_bipartite(nx.from_numpy_array(adjacency)))


def graph_atlas(label: str = "triangle") -> list[Graph]:
    """Connected graphs of 3 to 7 nodes from ``networkx.graph_atlas_g()`` (994), in atlas order.

    Node features are a constant 1 (N, 1); ``y`` is a 0-dim label (see
    :data:`ATLAS_LABELS`).
    """
    import networkx as nx

    if label not in ATLAS_LABELS:
        raise DataError(f"graph-atlas: unknown label {label!r} ({', '.join(ATLAS_LABELS)}).")
    graphs = []
    for g in nx.graph_atlas_g():
        if g.number_of_nodes() < 3 or not nx.is_connected(g):
            continue
        adjacency = nx.to_numpy_array(g, nodelist=sorted(g.nodes), dtype=np.int64)
        edges = torch.from_numpy(np.stack(np.nonzero(adjacency))).long()  # both directions, sorted
        y = torch.tensor(_atlas_label(adjacency, label))
        graphs.append(Graph(torch.ones(g.number_of_nodes(), 1), edges, y))
    return graphs


def kfold_indices(labels: np.ndarray | torch.Tensor, k: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` indices of fold ``fold`` of a stratified, shuffled ``k``-fold split (sorted)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if not 0 <= fold < k:
        raise ConfigError(f"data.fold: {fold} is not in 0..{k - 1} (data.folds={k}).")
    if k < 2 or k > len(labels):
        raise ConfigError(f"data.folds: {k} folds of {len(labels)} examples; use 2..{len(labels)}.")
    splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed % 2**32).split(np.zeros(len(labels)), labels)
    train, test = list(splits)[fold]
    return np.sort(train), np.sort(test)


# --------------------------------------------------------------------------- dataset bundles


@dataclass(frozen=True)
class PlanetoidOptions(LinkOptions, SamplingOptions):
    """Options of the Planetoid citation graphs (the public split is fixed)."""

    normalize_features: bool = option(True, "divide each node's features by their sum (Kipf & Welling)")


@dataclass(frozen=True)
class GraphCsvOptions(LinkOptions, SamplingOptions):
    """Options of your graph as CSV files."""

    path: Optional[str] = option(None, "edges CSV with columns source, target and optionally weight")
    nodes_path: Optional[str] = option(None, "nodes CSV with columns id, label and numeric features")
    test_fraction: float = option(0.2, "fraction of labelled nodes held out for testing (fixed seed)", low=0.0, high=0.9)
    undirected: bool = option(True, "add every edge in the reverse direction too")
    normalize_features: bool = option(False, "divide each node's features by their sum")


@dataclass(frozen=True)
class GraphAtlasOptions:
    """Options of the graph-atlas graph classification dataset."""

    label: Literal["triangle", "bipartite", "cycle4"] = option(
        "triangle", "what to predict: contains a triangle, is bipartite, contains a 4-cycle"
    )
    folds: int = option(10, "stratified folds; one is the test split", low=2)
    fold: int = option(0, "which fold is the test split (0..folds-1)", low=0)
    seed: int = option(0, "seed of the fold assignment")

    def validate(self, path: str) -> None:
        if self.fold >= self.folds:
            raise ConfigError(f"{path}.fold: {self.fold} is not in 0..{self.folds - 1} ({path}.folds={self.folds}).")


class NodeSplit:
    """The nodes of one split: the whole graph and a boolean mask."""

    def __init__(self, graph: Graph, mask: torch.Tensor, graph_fingerprint: Callable[[], str]) -> None:
        self.graph, self.mask = graph, mask
        self._graph_fingerprint = graph_fingerprint
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return int(self.mask.sum())

    def fingerprint(self) -> str:
        """sha256 of the graph's content and of this split's mask."""
        if self._fingerprint is None:
            h = hashlib.sha256(self._graph_fingerprint().encode())
            h.update(self.mask.numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class NodeGraphData(SplitBundle):
    """Full-batch node classification: each batch is ``(graph, mask)`` with the whole graph on the device."""

    def __init__(self, name: str, graph: Graph, class_names: list[str], config: Any) -> None:
        self.name, self.config, self.graph, self.class_names = name, config, graph, class_names
        masks = dict(graph.masks)
        if config.limit is not None:  # the first `limit` training nodes
            masks["train"] = _index_to_mask(masks["train"].nonzero().flatten()[: config.limit], graph.num_nodes)
        self.splits = {k: NodeSplit(graph, masks[k], self._graph_fingerprint) for k in ("train", "val", "test")}
        if len(self.splits["train"]) == 0:
            raise DataError(f"{name}: the training split is empty.")
        self._fingerprint: str | None = None
        self._device_cache: dict[str, Graph] = {}
        sizes = getattr(config.options, "neighbors", None)
        self.sampler = NeighborSampler(graph, tuple(sizes)) if sizes else None
        self.meta = {
            "num_classes": len(class_names),
            "in_channels": int(graph.x.shape[1]),
            "num_nodes": graph.num_nodes,
            "num_edges": graph.num_edges,
            "level": "node",
            "class_names": class_names,
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def _graph_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.graph.fingerprint()
        return self._fingerprint

    def num_batches(self, split: str = "train") -> int:
        n = len(self.split(split))
        if split == "train" and self.sampler is not None:
            return -(-n // self.config.batch_size)
        return 1 if n else 0

    def _on_device(self, device: torch.device) -> Graph:
        key = str(device)
        if key not in self._device_cache:
            self._device_cache[key] = self.graph.to(device)
        return self._device_cache[key]

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[Graph, torch.Tensor]]:
        """One batch per epoch: ``(graph, train_mask)`` (nothing when resuming after it); with
        ``neighbors``, mini-batches ``(sampled subgraph, mask of its target nodes)`` of ``batch_size`` targets."""
        if self.sampler is None:
            if start == 0:
                yield self._on_device(device), self.splits["train"].mask.to(device)
            return
        nodes = self.splits["train"].mask.nonzero().flatten()
        order = nodes[torch.randperm(len(nodes), generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch)))]
        for i, targets in enumerate(order.split(self.config.batch_size)):
            if i < start:
                continue
            sub, mask = self.sampler.sample(targets, torch.Generator().manual_seed(derive_seed(seed, "sample", epoch, i)))
            yield sub.to(device), mask.to(device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[Graph, torch.Tensor]]:
        data = self.split(split)
        if len(data):
            yield self._on_device(device), data.mask.to(device)


class GraphListSplit:
    """Graphs of one split with their labels (G,)."""

    def __init__(self, graphs: list[Graph]) -> None:
        self.graphs = graphs
        self.labels = torch.stack([g.y for g in graphs]) if graphs else torch.zeros(0, dtype=torch.long)  # type: ignore[misc]
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.graphs)

    def fingerprint(self) -> str:
        """sha256 over the graphs' fingerprints, in order."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for g in self.graphs:
                h.update(g.fingerprint().encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class GraphLevelData(SplitBundle):
    """Graph classification: batches ``(batched_graph, y)`` of ``data.batch_size`` graphs.

    Training batches follow a permutation seeded by ``(seed, epoch)`` and drop
    the last incomplete batch; ``start`` skips the batches a resumed run has
    already seen.
    """

    def __init__(
        self, name: str, splits: dict[str, list[Graph]], class_names: list[str], config: Any, extra: dict[str, Any]
    ) -> None:
        self.name, self.config, self.class_names = name, config, class_names
        self.splits = {k: GraphListSplit(v) for k, v in splits.items()}
        if len(self.splits["train"]) == 0:
            raise DataError(f"{name}: the training split is empty (check data.val_fraction and data.limit).")
        first = self.splits["train"].graphs[0]
        self.meta = {
            "num_classes": len(class_names),
            "in_channels": int(first.x.shape[1]),
            "level": "graph",
            "class_names": class_names,
            "num_graphs": sum(len(s) for s in self.splits.values()),
            **extra,
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

    def num_batches(self, split: str = "train") -> int:
        """Batches per epoch (training drops the last incomplete batch)."""
        n = len(self.split(split))
        if split == "train":
            return max(1, n // self.config.batch_size)
        return -(-n // self.config.eval_batch_size)

    def _batches(self, data: GraphListSplit, index: list[torch.Tensor], device: torch.device) -> Iterator[Any]:
        for idx in index:
            batch = batch_graphs([data.graphs[i] for i in idx.tolist()]).to(device)
            yield batch, batch.y

    def train_batches(
        self, epoch: int, seed: int, device: torch.device, start: int = 0
    ) -> Iterator[tuple[Graph, torch.Tensor]]:
        data = self.splits["train"]
        bs = min(self.config.batch_size, len(data))
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch)))
        yield from self._batches(data, list(order[: self.num_batches() * bs].split(bs))[start:], device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[Graph, torch.Tensor]]:
        data = self.split(split)
        yield from self._batches(data, list(torch.arange(len(data)).split(self.config.eval_batch_size)), device)


def _row_normalized(graph: Graph) -> Graph:
    rowsum = graph.x.sum(1, keepdim=True)
    x = torch.where(rowsum != 0, graph.x / torch.where(rowsum != 0, rowsum, 1), 0)
    return Graph(x, graph.edge_index, graph.y, graph.edge_weight, graph.masks)


def load_planetoid_data(name: str, config: Any, state_dir: Path | None = None) -> NodeGraphData | LinkData:
    """A Planetoid graph as a bundle; ``data.val_fraction`` and ``data.split_seed`` do not apply (public split),
    except to the edge split of link prediction (``data.links=true``)."""
    graph = load_planetoid(name, config.root, normalize_features=config.options.normalize_features)
    if config.options.links:
        return LinkData(name, graph, config)
    num_classes = int(graph.y.max()) + 1  # type: ignore[union-attr]
    return NodeGraphData(name, graph, [str(i) for i in range(num_classes)], config)


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


def load_graph_atlas(config: Any, state_dir: Path | None = None) -> GraphLevelData:
    opts: GraphAtlasOptions = config.options
    graphs = graph_atlas(opts.label)
    labels = np.array([int(g.y) for g in graphs])  # type: ignore[arg-type]
    rest, test = kfold_indices(labels, opts.folds, opts.fold, opts.seed)
    train, val = stratified_split(labels[rest], config.val_fraction, config.split_seed)
    train, val = np.sort(rest[train]), np.sort(rest[val])
    if config.limit is not None:
        train = train[: config.limit]
    splits = {k: [graphs[i] for i in idx] for k, idx in (("train", train), ("val", val), ("test", test))}
    extra = {"label": opts.label, "folds": opts.folds, "fold": opts.fold, "class_counts": np.bincount(labels).tolist()}
    return GraphLevelData(f"graph-atlas:{opts.label}", splits, list(ATLAS_LABELS[opts.label]), config, extra)


__all__ = [
    "ATLAS_LABELS", "EdgeList", "Graph", "GraphAtlasOptions", "GraphCsvOptions", "GraphLevelData", "GraphListSplit",
    "NodeGraphData", "NodeSplit", "PlanetoidOptions", "RestrictedUnpickler", "batch_graphs", "graph_atlas",
    "kfold_indices", "load_edge_list", "load_graph_atlas", "load_graph_csv", "load_planetoid", "load_planetoid_data",
    "safe_unpickle", "stratified_masks",
]
