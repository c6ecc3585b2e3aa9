"""Graph data: the Graph structure, batching, Planetoid (against PyG), CSV graphs and the graph atlas."""

from __future__ import annotations

import hashlib
import http.server
import os
import pickle
import shutil
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset, planetoid
from deepatlas.data.graph import Graph, batch_graphs
from deepatlas.data.graph_atlas import graph_atlas, kfold_indices
from deepatlas.data.graph_csv import load_edge_list
from deepatlas.data.planetoid import load_planetoid, safe_unpickle
from deepatlas.errors import ConfigError, DataError

PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


@pytest.fixture(scope="module")
def atlas() -> list[Graph]:
    return graph_atlas("triangle")


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def copy_planetoid(source: Path, dest: Path, name: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        shutil.copy(source / f"ind.{name}.{part}", dest)
    return dest


def graph_config(name: str, *extra: str):
    task = "graph-classification" if name == "graph-atlas" else "node-classification"  # a task that takes this data
    return load_recipe("quickstart", [f"data.name={name}", f"task.name={task}", *extra]).data


# --------------------------------------------------------------------------- Graph and batching


def small_graph() -> Graph:
    edge_index = torch.tensor([[0, 1, 2, 2, 3, 0], [1, 2, 0, 0, 2, 3]])  # (2 -> 0) twice: a parallel edge
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    return Graph(x, edge_index, torch.tensor([0, 1, 0, 1]), weight)


def dense_adjacency(g: Graph) -> torch.Tensor:
    a = torch.zeros(g.num_nodes, g.num_nodes)
    weight = g.edge_weight if g.edge_weight is not None else torch.ones(g.num_edges)
    a.index_put_((g.edge_index[1], g.edge_index[0]), weight, accumulate=True)  # A[target, source]
    return a


def test_csr_and_sparse_agree_with_dense_adjacency() -> None:
    g = small_graph()
    crow, col, values = g.to_csr()
    assert crow.tolist() == [0, 2, 3, 5, 6]  # in-degrees 2, 1, 2, 1 (node 0 gets the parallel edge twice)
    assert col.tolist() == [2, 2, 0, 1, 3, 0]  # sources, grouped by target, sorted within
    assert values.tolist() == [3.0, 4.0, 1.0, 2.0, 5.0, 6.0]
    dense = dense_adjacency(g)
    assert torch.equal(g.to_sparse().to_dense(), dense)
    assert torch.allclose(g.to_sparse() @ g.x, dense @ g.x)
    unweighted = Graph(g.x, g.edge_index)
    assert torch.equal(unweighted.to_sparse().to_dense(), dense_adjacency(unweighted))
    # aggregation into targets: row 1 of A @ X is x[0] (the only edge into node 1 comes from 0)
    assert torch.equal((unweighted.to_sparse() @ g.x)[1], g.x[0])


def test_random_graph_csr_matches_dense() -> None:
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 30, (2, 200), generator=gen)
    g = Graph(torch.randn(30, 4, generator=gen), edge_index, edge_weight=torch.rand(200, generator=gen))
    assert torch.allclose(g.to_sparse().to_dense(), dense_adjacency(g))
    assert torch.allclose(g.to_sparse() @ g.x, dense_adjacency(g) @ g.x, atol=1e-5)


def test_to_undirected_adds_reverse_edges_once() -> None:
    g = small_graph().to_undirected()
    pairs = edge_set(g.edge_index)
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 0), (0, 2), (3, 2), (2, 3), (0, 3), (3, 0)}
    assert g.num_edges == len(pairs)  # the parallel (2, 0) edge is merged
    weight = dict(zip(map(tuple, g.edge_index.t().tolist()), g.edge_weight.tolist(), strict=True))
    assert weight[(0, 1)] == weight[(1, 0)] == 1.0  # a one-way edge's reverse copies its weight
    assert weight[(2, 0)] == 3.0 and weight[(0, 2)] == 3.0  # first of the parallel edges wins
    assert weight[(2, 3)] == 5.0 and weight[(3, 2)] == 5.0


def test_to_moves_everything_and_fingerprint_tracks_content() -> None:
    g = small_graph()
    g.masks["train"] = torch.tensor([True, False, True, False])
    moved = g.to("cpu")
    assert moved.fingerprint() == g.fingerprint() and moved.masks["train"].tolist() == [True, False, True, False]
    changed = small_graph()
    changed.x[0, 0] = 99.0
    assert changed.fingerprint() != small_graph().fingerprint()
    assert small_graph().fingerprint() == small_graph().fingerprint()
    assert g.fingerprint() != small_graph().fingerprint()  # masks count


def test_batch_graphs_offsets_edges_and_builds_batch() -> None:
    a = Graph(torch.ones(3, 2), torch.tensor([[0, 1], [1, 2]]), torch.tensor(1))
    b = Graph(torch.zeros(2, 2), torch.tensor([[1], [0]]), torch.tensor(0))
    c = Graph(torch.full((4, 2), 2.0), torch.tensor([[0, 3, 2], [3, 0, 1]]), torch.tensor(1))
    batch = batch_graphs([a, b, c])
    assert batch.num_nodes == 9 and batch.num_edges == 6 and batch.num_graphs == 3
    assert batch.edge_index.tolist() == [[0, 1, 4, 5, 8, 7], [1, 2, 3, 8, 5, 6]]
    assert batch.batch.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert batch.ptr.tolist() == [0, 3, 5, 9]
    assert batch.y.tolist() == [1, 0, 1]
    assert torch.equal(batch.x[3:5], torch.zeros(2, 2))
    nodes = batch_graphs([Graph(torch.ones(2, 1), torch.zeros(2, 0, dtype=torch.long), torch.tensor([3, 4]))] * 2)
    assert nodes.y.tolist() == [3, 4, 3, 4]  # node labels are concatenated
    with pytest.raises(ValueError, match="edge_weight"):
        batch_graphs([a, Graph(a.x, a.edge_index, a.y, torch.ones(2))])


# --------------------------------------------------------------------------- Planetoid


def test_cora_public_split(planetoid_dir: Path) -> None:
    g = load_planetoid("cora", str(planetoid_dir))
    assert g.x.shape == (2708, 1433) and g.num_nodes == 2708
    assert int(g.y.max()) + 1 == 7
    assert g.num_edges == 10556  # 5,278 undirected edges, once each way
    pairs = edge_set(g.edge_index)
    assert len(pairs) == 10556 and all((t, s) in pairs for s, t in pairs)
    assert not (g.edge_index[0] == g.edge_index[1]).any()
    sizes = {k: int(v.sum()) for k, v in g.masks.items()}
    assert sizes == {"train": 140, "val": 500, "test": 1000}
    assert torch.equal(g.masks["train"].nonzero().flatten(), torch.arange(140))
    assert torch.equal(g.masks["val"].nonzero().flatten(), torch.arange(140, 640))
    assert Counter(g.y[g.masks["train"]].tolist()) == dict.fromkeys(range(7), 20)
    assert not (g.masks["train"] & g.masks["test"]).any() and not (g.masks["val"] & g.masks["test"]).any()
    assert set(np.unique(g.x.numpy())) == {0.0, 1.0}


def test_citeseer_public_split_pads_isolated_test_nodes(planetoid_dir: Path) -> None:
    g = load_planetoid("citeseer", str(planetoid_dir), normalize_features=True)
    assert g.x.shape == (3327, 3703) and int(g.y.max()) + 1 == 6
    assert {k: int(v.sum()) for k, v in g.masks.items()} == {"train": 120, "val": 500, "test": 1000}
    in_no_split = ~(g.masks["train"] | g.masks["val"] | g.masks["test"])
    padded = in_no_split.nonzero().flatten()
    padded = padded[padded >= 2312]  # after allx: the test range
    assert len(padded) == 15 and (g.x[padded] == 0).all() and (g.y[padded] == 0).all()
    rowsum = g.x.sum(1)
    nonzero = rowsum > 0
    assert torch.allclose(rowsum[nonzero], torch.ones(int(nonzero.sum())))


@pytest.mark.parametrize(("name", "pyg_name"), [("cora", "Cora"), ("citeseer", "CiteSeer")])
def test_planetoid_equals_torch_geometric(planetoid_dir: Path, tmp_path: Path, name: str, pyg_name: str) -> None:
    if os.environ.get("CI"):
        import torch_geometric  # noqa: F401 -- the oracle must be installed in CI
    pyg = pytest.importorskip("torch_geometric.datasets")
    transforms = pytest.importorskip("torch_geometric.transforms")
    copy_planetoid(planetoid_dir, tmp_path / "pyg" / pyg_name / "raw", name)
    for normalize in (False, True):
        transform = transforms.NormalizeFeatures() if normalize else None
        ref = pyg.Planetoid(str(tmp_path / "pyg"), pyg_name, split="public", transform=transform)[0]
        ours = load_planetoid(name, str(planetoid_dir), normalize_features=normalize)
        assert torch.allclose(ours.x, ref.x, atol=1e-7), normalize
    assert torch.equal(ours.y, ref.y)
    for split in ("train", "val", "test"):
        assert torch.equal(ours.masks[split], getattr(ref, f"{split}_mask")), split
    assert ours.num_edges == ref.edge_index.shape[1]
    assert edge_set(ours.edge_index) == edge_set(ref.edge_index)


def test_disallowed_global_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    content = pickle.dumps(Evil(), protocol=2)
    with pytest.raises(DataError, match=r"evil\.x: refused to unpickle global (os|posix|nt)\.system"):
        safe_unpickle(content, Path("evil.x"))
    assert not marker.exists()
    eval_pickle = b"\x80\x02c__builtin__\neval\nq\x00X\x06\x00\x00\x001 + 1q\x01\x85q\x02Rq\x03."
    with pytest.raises(DataError, match=r"refused to unpickle global __builtin__\.eval"):
        safe_unpickle(eval_pickle, Path("evil.y"))
    with pytest.raises(DataError, match=r"broken\.x: not a readable pickle"):
        safe_unpickle(b"\x80\x02]q\x00(K\x01", Path("broken.x"))


def test_loader_reads_files_with_the_restricted_unpickler(
    planetoid_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    folder = copy_planetoid(planetoid_dir, tmp_path / "data" / "planetoid", "cora")
    evil = pickle.dumps(Evil(), protocol=2)
    (folder / "ind.cora.x").write_bytes(evil)
    # even a file whose checksum is trusted must not run code
    monkeypatch.setitem(planetoid.PLANETOID_SHA256, "ind.cora.x", hashlib.sha256(evil).hexdigest())
    with pytest.raises(DataError, match=r"ind\.cora\.x: refused to unpickle global (os|posix|nt)\.system"):
        load_planetoid("cora", str(tmp_path / "data"))
    assert not marker.exists()


def test_changed_byte_fails_the_checksum(planetoid_dir: Path, tmp_path: Path) -> None:
    folder = copy_planetoid(planetoid_dir, tmp_path / "data" / "planetoid", "cora")
    target = folder / "ind.cora.graph"
    content = bytearray(target.read_bytes())
    content[100] ^= 0xFF
    target.write_bytes(bytes(content))
    with pytest.raises(DataError, match=r"ind\.cora\.graph: content checksum mismatch.*Delete it"):
        load_planetoid("cora", str(tmp_path / "data"))


def test_download_is_verified_and_cached(planetoid_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = copy_planetoid(planetoid_dir, tmp_path / "served", "cora")
    copy_planetoid(planetoid_dir, served, "citeseer")
    (served / "ind.citeseer.tx").write_bytes(b"not citeseer")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(planetoid, "PLANETOID_URL", f"http://127.0.0.1:{server.server_port}/")
        monkeypatch.setenv("DEEPATLAS_DATA_DIR", str(tmp_path / "empty"))
        g = load_planetoid("cora")
        assert g.num_nodes == 2708
        cache = tmp_path / "cache" / "planetoid"
        assert sorted(p.name for p in cache.iterdir()) == sorted(f"ind.cora.{p}" for p in PARTS)
        with pytest.raises(DataError, match=r"ind\.citeseer\.tx: content checksum mismatch"):
            load_planetoid("citeseer")
        assert not (cache / "ind.citeseer.tx").exists(), "a failed download leaves nothing behind"
        with pytest.raises(DataError, match=r"ind\.pubmed\.x: download failed"):
            load_planetoid("pubmed")  # 404
    finally:
        server.shutdown()


def test_cora_bundle_gives_the_whole_graph_and_a_mask(planetoid_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPATLAS_DATA_DIR", str(planetoid_dir))
    data = load_dataset(graph_config("cora"))
    assert data.meta == {
        "num_classes": 7, "in_channels": 1433, "num_nodes": 2708, "num_edges": 10556, "level": "node",
        "class_names": [str(i) for i in range(7)], "sizes": {"train": 140, "val": 500, "test": 1000},
    }
    assert data.num_batches("train") == data.num_batches("val") == 1
    cpu = torch.device("cpu")
    [(graph, mask)] = list(data.train_batches(epoch=3, seed=0, device=cpu))
    assert graph.num_nodes == 2708 and int(mask.sum()) == 140
    assert torch.allclose(graph.x.sum(1)[graph.x.sum(1) > 0], torch.tensor(1.0))  # normalize_features default
    assert list(data.train_batches(epoch=3, seed=0, device=cpu, start=1)) == []
    [(_, val_mask)] = list(data.eval_batches("val", cpu))
    assert int(val_mask.sum()) == 500
    prints = data.fingerprints(("train", "val", "test"))
    assert len(set(prints.values())) == 3
    assert prints == load_dataset(graph_config("cora")).fingerprints(("train", "val", "test"))
    assert load_dataset(graph_config("cora", "data.normalize_features=false")).fingerprints() != data.fingerprints()
    assert load_dataset(graph_config("cora", "data.limit=30")).meta["sizes"]["train"] == 30


# --------------------------------------------------------------------------- your own graph (CSV)


def write_csv_graph(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = ["id,label,f1,f2"]
    for i in range(40):
        label = "" if i == 39 else ("spam" if i % 2 else "ham")
        lines.append(f"n{i:02d},{label},{rng.integers(0, 5)},{i / 10}")
    (folder / "nodes.csv").write_text("\n".join(lines) + "\n")
    edges = ["source,target,weight"] + [f"n{i:02d},n{(i + 1) % 40:02d},{1 + i % 3}" for i in range(40)]
    (folder / "edges.csv").write_text("\n".join(edges) + "\n")
    return folder / "edges.csv", folder / "nodes.csv"


def test_csv_graph_round_trip(tmp_path: Path) -> None:
    edges, nodes = write_csv_graph(tmp_path)
    graph, class_names, ids = load_edge_list(edges, nodes, val_fraction=0.2, test_fraction=0.25, seed=1)
    assert class_names == ["ham", "spam"] and ids[:2] == ["n00", "n01"] and len(ids) == 40
    assert graph.x.shape == (40, 2) and graph.x[3, 1] == pytest.approx(0.3)
    assert graph.y[:4].tolist() == [0, 1, 0, 1] and graph.y[39] == -1
    assert graph.num_edges == 80  # a ring, both directions
    weight = dict(zip(map(tuple, graph.edge_index.t().tolist()), graph.edge_weight.tolist(), strict=True))
    assert weight[(4, 5)] == weight[(5, 4)] == 2.0
    masks = graph.masks
    total = masks["train"].int() + masks["val"].int() + masks["test"].int()
    assert (total[:39] == 1).all() and total[39] == 0  # labelled nodes in exactly one split
    assert (int(masks["test"].sum()), int(masks["val"].sum())) == (10, 6)
    assert Counter(graph.y[masks["test"]].tolist()) == {0: 5, 1: 5}  # stratified
    other = load_edge_list(edges, nodes, val_fraction=0.2, test_fraction=0.25, seed=2).graph.masks
    assert torch.equal(other["test"], masks["test"]) and not torch.equal(other["val"], masks["val"])
    one_way = load_edge_list(edges, nodes, undirected=False).graph
    assert one_way.num_edges == 40 and one_way.edge_index[:, 0].tolist() == [0, 1]


def test_csv_graph_errors_name_file_row_and_column(tmp_path: Path) -> None:
    edges, nodes = write_csv_graph(tmp_path)
    text = nodes.read_text().splitlines()
    bad_feature = tmp_path / "bad_feature.csv"
    bad_feature.write_text("\n".join([*text[:3], "n99,ham,abc,1"]) + "\n")
    with pytest.raises(DataError, match=r"bad_feature\.csv, row 4, column 'f1': 'abc' is not a number"):
        load_edge_list(edges, bad_feature)
    short = tmp_path / "short.csv"
    short.write_text("id,label,f1,f2\na,ham,1\n")
    with pytest.raises(DataError, match=r"short\.csv, row 2, column 'f2': missing value"):
        load_edge_list(edges, short)
    duplicate = tmp_path / "duplicate.csv"
    duplicate.write_text("\n".join([*text, text[5]]) + "\n")
    with pytest.raises(DataError, match=r"duplicate\.csv, row 42, column 'id': node 'n04' appears twice"):
        load_edge_list(edges, duplicate)
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("id,f1\na,1\n")
    with pytest.raises(DataError, match=r"no_label\.csv: no column 'label' \(columns: id, f1\)"):
        load_edge_list(edges, no_label)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("source,target\nn00,n01\nn01,zz\n")
    with pytest.raises(DataError, match=r"unknown\.csv, row 3, column 'target': node 'zz' is not in .*nodes\.csv"):
        load_edge_list(unknown, nodes)
    bad_weight = tmp_path / "bad_weight.csv"
    bad_weight.write_text("source,target,weight\nn00,n01,heavy\n")
    with pytest.raises(DataError, match=r"bad_weight\.csv, row 2, column 'weight': 'heavy' is not a number"):
        load_edge_list(bad_weight, nodes)
    extra = tmp_path / "extra.csv"
    extra.write_text("source,target,colour\nn00,n01,red\n")
    with pytest.raises(DataError, match=r"extra\.csv: unexpected columns \['colour'\]"):
        load_edge_list(extra, nodes)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("source,target\nn00,n01,n02\n")
    with pytest.raises(DataError, match=r"ragged\.csv, row 2: more values than the header"):
        load_edge_list(ragged, nodes)
    with pytest.raises(DataError, match=r"missing\.csv: cannot open"):
        load_edge_list(tmp_path / "missing.csv", nodes)


def test_graph_csv_bundle(tmp_path: Path) -> None:
    edges, nodes = write_csv_graph(tmp_path)
    data = load_dataset(graph_config("graph-csv", f"data.path={edges}", f"data.nodes_path={nodes}"))
    assert data.meta["level"] == "node" and data.meta["class_names"] == ["ham", "spam"]
    assert data.meta["in_channels"] == 2 and data.meta["num_edges"] == 80
    assert sum(data.meta["sizes"].values()) == 39
    with pytest.raises(DataError, match="data.nodes_path"):
        load_dataset(graph_config("graph-csv", f"data.path={edges}"))


# --------------------------------------------------------------------------- graph atlas


def test_graph_atlas_sizes_and_class_balance(atlas: list[Graph]) -> None:
    assert len(atlas) == 994
    assert Counter(g.num_nodes for g in atlas) == {3: 2, 4: 6, 5: 21, 6: 112, 7: 853}
    assert all(g.x.shape == (g.num_nodes, 1) and (g.x == 1).all() for g in atlas)
    assert all(g.num_edges % 2 == 0 and edge_set(g.edge_index) == edge_set(g.edge_index.flip(0)) for g in atlas)
    balance = {label: Counter(int(g.y) for g in graph_atlas(label)) for label in ("bipartite", "cycle4")}
    assert Counter(int(g.y) for g in atlas) == {1: 906, 0: 88}
    assert balance == {"bipartite": {1: 70, 0: 924}, "cycle4": {1: 905, 0: 89}}
    path3, triangle = atlas[0], atlas[1]  # the atlas orders graphs by nodes, then edges
    assert (path3.num_edges, int(path3.y)) == (4, 0) and (triangle.num_edges, int(triangle.y)) == (6, 1)


def test_kfold_folds_are_disjoint_covering_and_stratified(atlas: list[Graph]) -> None:
    labels = np.array([int(g.y) for g in atlas])
    seen = []
    for fold in range(10):
        train, test = kfold_indices(labels, 10, fold, seed=3)
        assert not set(train) & set(test) and len(train) + len(test) == len(labels)
        assert abs(labels[test].sum() - labels.sum() / 10) <= 1
        seen.append(test)
    everything = np.concatenate(seen)
    assert len(everything) == len(labels) and set(everything) == set(range(len(labels)))
    assert not np.array_equal(kfold_indices(labels, 10, 0, seed=4)[1], seen[0])
    with pytest.raises(ConfigError, match="data.fold"):
        kfold_indices(labels, 10, 10, seed=0)


def test_graph_atlas_bundle_batches(atlas: list[Graph]) -> None:
    data = load_dataset(graph_config("graph-atlas", "data.batch_size=64", "data.fold=3", "data.eval_batch_size=40"))
    meta = data.meta
    assert meta["level"] == "graph" and meta["in_channels"] == 1 and meta["num_classes"] == 2
    assert meta["class_names"] == ["no triangle", "triangle"] and meta["class_counts"] == [88, 906]
    sizes = meta["sizes"]
    assert sum(sizes.values()) == 994 and sizes["test"] in (99, 100) and sizes["val"] == 90  # ceil(10% of 894)
    cpu = torch.device("cpu")
    epoch = list(data.train_batches(epoch=1, seed=5, device=cpu))
    assert len(epoch) == data.num_batches("train") == sizes["train"] // 64
    batch, y = epoch[0]
    assert batch.num_graphs == 64 and y.shape == (64,) and batch.batch.max() == 63
    assert torch.equal(batch.ptr[1:] - batch.ptr[:-1], torch.bincount(batch.batch))
    again = list(data.train_batches(epoch=1, seed=5, device=cpu))
    assert all(torch.equal(a[1], b[1]) and a[0].fingerprint() == b[0].fingerprint() for a, b in zip(epoch, again, strict=True))
    resumed = list(data.train_batches(epoch=1, seed=5, device=cpu, start=2))
    assert [b[0].fingerprint() for b in resumed] == [b[0].fingerprint() for b in epoch[2:]]
    other = next(iter(data.train_batches(epoch=2, seed=5, device=cpu)))[0]
    assert other.fingerprint() != batch.fingerprint()
    evaluated = list(data.eval_batches("test", cpu))
    assert len(evaluated) == data.num_batches("test") == -(-sizes["test"] // 40)
    assert torch.equal(torch.cat([y for _, y in evaluated]), data.split("test").labels)
    prints = data.fingerprints(("train", "val", "test"))
    assert len(set(prints.values())) == 3
    assert load_dataset(graph_config("graph-atlas", "data.fold=4")).fingerprints(("test",)) != {"test": prints["test"]}
    with pytest.raises(ConfigError, match="fold"):
        graph_config("graph-atlas", "data.fold=10")
    bipartite = load_dataset(graph_config("graph-atlas", "data.label=bipartite"))
    assert bipartite.meta["class_counts"] == [924, 70]


def test_neighbor_sampler_keeps_at_most_s_incoming_edges_per_node() -> None:
    from deepatlas.data.sampling import NeighborSampler

    torch.manual_seed(0)
    n = 40
    edge_index = torch.randint(0, n, (2, 400))
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    graph = Graph(torch.arange(n, dtype=torch.float32)[:, None], edge_index, torch.arange(n))
    sampler = NeighborSampler(graph, (3, 2))
    targets = torch.tensor([5, 7, 11])
    sub, mask = sampler.sample(targets, torch.Generator().manual_seed(1))
    original = sub.x[:, 0].long()  # node ids survive relabelling through the features
    assert original[:3].tolist() == [5, 7, 11] and mask.tolist()[:4] == [True, True, True, False]
    edges = set(map(tuple, edge_index.t().tolist()))
    sampled = [(int(original[s]), int(original[t])) for s, t in sub.edge_index.t().tolist()]
    assert all(e in edges for e in sampled)  # only real edges
    incoming = torch.bincount(edge_index[1], minlength=n)
    for t in (5, 7, 11):
        assert sum(1 for _, v in sampled if v == t) >= min(3, int(incoming[t]))  # first hop: S_1 (or all)
    first_hop = {s for s, v in sampled if v in (5, 7, 11)}
    for u in first_hop - {5, 7, 11}:
        assert sum(1 for _, v in sampled if v == u) <= 2 + 3  # second hop: S_2 (plus first-hop edges into u)
    again, _ = sampler.sample(targets, torch.Generator().manual_seed(1))
    assert torch.equal(again.edge_index, sub.edge_index)  # seeded


@pytest.mark.usefixtures("planetoid_dir")
def test_graphsage_trains_on_cora_with_neighbour_sampling(tmp_path: Path) -> None:
    import deepatlas

    run = deepatlas.train(
        "graphsage-cora", ["train.epochs=5"], progress=False, runs_dir=tmp_path / "runs",
    )
    assert run.status == "completed" and run.summary["eval"]["test"]["accuracy"] >= 0.70
