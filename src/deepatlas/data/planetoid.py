"""The Planetoid citation graphs: Cora, CiteSeer and PubMed with their public split.

``cora``, ``citeseer``, ``pubmed``: the Planetoid citation graphs (Yang,
Cohen & Salakhutdinov, 2016) with the public split used by GCN (Kipf &
Welling, 2017) and PyG's ``Planetoid(split="public")``: 20 training nodes per
class (the first ``len(y)`` nodes), the next 500 for validation, the 1,000
``test.index`` nodes for testing. CiteSeer's 15 test-range nodes without
features get zero features and label 0, and are in no split. Edges are made
undirected, deduplicated, without self loops (Cora: 5,278 undirected edges =
10,556 entries of ``edge_index``). ``normalize_features`` divides each
feature row by its sum as Kipf's ``preprocess_features`` does (a zero row
stays zero). Class names are indices: the files do not record them. With
``data.links=true`` the graph becomes a link-prediction bundle (:mod:`.links`).

Planetoid files are Python-2 pickles. They are verified against their sha256
before being read, and then read with :class:`RestrictedUnpickler`, which
resolves only the numpy/scipy/builtin names those files use: any other global
is refused before anything is called.
"""

from __future__ import annotations

import io
import pickle
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..schema import option
from .download import cache_dir, check_sha256, data_roots, download, find_file, read_maybe_gzip
from .graph import Graph, index_to_mask
from .graph_bundles import NodeGraphData
from .links import LinkData, LinkOptions
from .sampling import SamplingOptions

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
            shown = f"{module}.{name}".encode("unicode_escape").decode("ascii")  # a damaged name may hold newlines
            raise DataError(
                f"{self.path}: refused to unpickle global {shown} (only numpy arrays, scipy CSR "
                "matrices and plain containers are allowed); the file is not a Planetoid data file."
            ) from None


def safe_unpickle(content: bytes, path: Path) -> Any:
    """Unpickle ``content`` (read from ``path``) with :class:`RestrictedUnpickler`."""
    try:
        return RestrictedUnpickler(io.BytesIO(content), path).load()
    except DataError:
        raise
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean the same to the user
        reason = " ".join(str(exc).split())  # some unpickling errors span lines
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {reason}).") from None


# --------------------------------------------------------------------------- the files

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


MAX_ELEMENTS = 2_000_000_000  # a dense feature matrix larger than this is not a Planetoid file


def _csr_dense(matrix: Any, path: Path) -> np.ndarray:
    """The dense array of an unpickled CSR matrix, built with numpy from its validated parts.

    An unpickled matrix skips scipy's own checks, and scipy's C code (``toarray``) reads out of
    bounds, or crashes the process, on bad indices or arrays: nothing of it runs on our input.
    """
    state = getattr(matrix, "__dict__", {})
    shape = state.get("_shape")
    if not (isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape)):
        raise DataError(f"{path}: the sparse matrix has no valid shape ({shape!r}).")
    rows, cols = int(shape[0]), int(shape[1])
    if rows * cols > MAX_ELEMENTS:
        raise DataError(f"{path}: a {rows} x {cols} matrix is too large for a Planetoid file.")
    parts = {}
    for name, kinds in (("indptr", "iu"), ("indices", "iu"), ("data", "iufb")):
        value = state.get(name)
        if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in kinds:
            raise DataError(f"{path}: the sparse matrix's {name} is not a 1-d numeric array.")
        parts[name] = value.astype(np.int64 if name != "data" else np.float64)
    indptr, indices, data = parts["indptr"], parts["indices"], parts["data"]
    nnz = len(indices)
    if (len(indptr) != rows + 1 or len(data) != nnz or (rows + 1 and (indptr[0] != 0 or indptr[-1] != nnz))
            or (np.diff(indptr) < 0).any() or (nnz and (indices.min() < 0 or indices.max() >= cols))):
        raise DataError(f"{path}: the sparse matrix's index arrays are inconsistent (a damaged file).")
    dense = np.zeros((rows, cols), dtype=np.float64)
    np.add.at(dense, (np.repeat(np.arange(rows), np.diff(indptr)), indices), data)  # duplicates add, as in scipy
    return dense


def _dense(obj: Any, path: Path, rows: int | None = None) -> np.ndarray:
    import scipy.sparse

    try:
        if scipy.sparse.issparse(obj):
            obj = _csr_dense(obj, path)
        if not isinstance(obj, np.ndarray) or obj.ndim != 2:
            raise DataError(f"{path}: expected a 2-d matrix, found {type(obj).__name__}.")
        if rows is not None and obj.shape[0] != rows:
            raise DataError(f"{path}: has {obj.shape[0]} rows, expected {rows}.")
        dense = obj.astype(np.float32)
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError, MemoryError) as exc:
        raise DataError(f"{path}: not a valid matrix ({type(exc).__name__}: {' '.join(str(exc).split())}).") from None
    if not np.isfinite(dense).all():
        raise DataError(f"{path}: the matrix holds NaN or infinite values.")
    return dense


def _one_hot_labels(y: np.ndarray, path: Path, classes: int) -> np.ndarray:
    if y.shape[1] != classes or classes == 0:
        raise DataError(f"{path}: label rows have {y.shape[1]} columns, expected one per class ({classes}).")
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
            if not 0 <= values[-1] < 2**31:
                raise DataError(f"{path}, line {line_no}: node index {values[-1]} is out of range.")
    return np.asarray(values, dtype=np.int64)


def _planetoid_edges(graph: Any, path: Path, num_nodes: int) -> torch.Tensor:
    if not isinstance(graph, dict):
        raise DataError(f"{path}: expected a dict of adjacency lists, found {type(graph).__name__}.")
    source, target = [], []
    for node, neighbours in graph.items():
        if not isinstance(node, (int, np.integer)) or not isinstance(neighbours, (list, tuple, set)):
            raise DataError(f"{path}: entry {node!r} is not a node id with a list of neighbours.")
        if not all(isinstance(v, (int, np.integer)) for v in neighbours):
            raise DataError(f"{path}: the neighbours of node {node!r} are not all node ids.")
        if not 0 <= node < num_nodes or not all(0 <= v < num_nodes for v in neighbours):
            raise DataError(f"{path}: node ids outside 0..{num_nodes - 1} (at node {node!r}).")
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
    if len(y) > len(ally):
        raise DataError(f"{paths['y']}: {len(y)} training nodes but {paths['ally']} labels only {len(ally)}.")
    # CiteSeer's test range has 15 gaps among 1,000 nodes; far larger gaps mean a damaged index
    if len(test_index) and test_index.max() >= len(allx) + 2 * len(tx):
        raise DataError(f"{paths['test.index']}: test node {test_index.max()} lies far beyond the {len(tx)} test rows.")
    # Test nodes are numbered after allx; tx row j is node test_index[j]. Indices missing from the
    # test range (15 isolated CiteSeer nodes) get zero features and a zero label row (Kipf's code).
    n = max(len(allx), int(test_index.max()) + 1 if len(test_index) else 0)
    features = np.zeros((n, allx.shape[1]), dtype=np.float32)
    features[: len(allx)], features[test_index] = allx, tx
    labels = np.zeros(n, dtype=np.int64)
    labels[: len(ally)] = _one_hot_labels(ally, paths["ally"], y.shape[1])
    labels[test_index] = _one_hot_labels(ty, paths["ty"], y.shape[1])
    if normalize_features:
        rowsum = features.sum(1, keepdims=True)
        features = np.divide(features, rowsum, out=np.zeros_like(features), where=rowsum != 0)
    masks = {
        "train": index_to_mask(torch.arange(len(y)), n),
        "val": index_to_mask(torch.arange(len(y), min(len(y) + 500, n)), n),
        "test": index_to_mask(torch.from_numpy(test_index), n),
    }
    edge_index = _planetoid_edges(objects["graph"], paths["graph"], n)
    return Graph(torch.from_numpy(features), edge_index, torch.from_numpy(labels), masks=masks)


# --------------------------------------------------------------------------- the dataset


@dataclass(frozen=True)
class PlanetoidOptions(LinkOptions, SamplingOptions):
    """Options of the Planetoid citation graphs (the public split is fixed)."""

    normalize_features: bool = option(True, "divide each node's features by their sum (Kipf & Welling)")


def load_planetoid_data(name: str, config: Any, state_dir: Path | None = None) -> NodeGraphData | LinkData:
    """A Planetoid graph as a bundle; ``data.val_fraction`` and ``data.split_seed`` do not apply (public split),
    except to the edge split of link prediction (``data.links=true``)."""
    graph = load_planetoid(name, config.root, normalize_features=config.options.normalize_features)
    if config.options.links:
        return LinkData(name, graph, config)
    num_classes = int(graph.y.max()) + 1  # type: ignore[union-attr]
    return NodeGraphData(name, graph, [str(i) for i in range(num_classes)], config)


__all__ = [
    "PLANETOID_NAMES", "PLANETOID_SHA256", "PlanetoidOptions", "RestrictedUnpickler", "load_planetoid",
    "load_planetoid_data", "planetoid_file", "safe_unpickle",
]
