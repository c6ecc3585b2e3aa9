"""Bad user data is refused when it is read, with one line naming the file and what is wrong (issue 14)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.data.graph_csv import load_edge_list
from deepatlas.data.planetoid import _dense, safe_unpickle
from deepatlas.data.sources import parse_idx
from deepatlas.data.text import read_text_path
from deepatlas.errors import DataError
from tests.data.test_image_folder import folder_config, make_folder


def text_csv_config(path: Path):
    return load_recipe("bert-speakers-shakespeare", ["data.name=text-csv", f"data.path={path}", "data.block_size=8"]).data


def graph_files(tmp_path: Path, nodes: str, edges: str) -> tuple[Path, Path]:
    (tmp_path / "nodes.csv").write_text(nodes)
    (tmp_path / "edges.csv").write_text(edges)
    return tmp_path / "edges.csv", tmp_path / "nodes.csv"


NODES = "id,label,f1\n" + "".join(f"n{i},{i % 2},{i}\n" for i in range(8))


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def text_csv_error(path: Path, content: str) -> str:
    """The one-line error of loading ``content`` as a text CSV."""
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        load_dataset(text_csv_config(path))
    return one_line(exc)


def test_ragged_text_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    message = text_csv_error(path, "text,label\nhello,pos\nhello, world,neg\nbye,neg\n")
    assert f"{path}, line 3: 3 values but the header has 2 columns" in message
    assert f"{path}, line 3: 1 values" in text_csv_error(path, "text,label\nhello,pos\nbye\n")


def test_blank_and_single_labels_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    message = text_csv_error(path, "text,label\na,pos\nb, \nc,neg\n")
    assert f"{path}, line 3, column 'label': empty label" in message
    message = text_csv_error(path, "text,label\n" + "a,pos\n" * 20)
    assert "only one label 'pos'; a classifier needs at least two" in message


def test_valid_text_csv_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20)))
    assert load_dataset(text_csv_config(path)).class_names == ["a", "b"]


def test_empty_and_single_class_folders_are_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    (root / "empty").mkdir()
    with pytest.raises(DataError) as exc:
        load_dataset(folder_config(root))
    assert f"{root / 'empty'}: class folder without PNG/JPEG images" in one_line(exc)
    single = make_folder(tmp_path / "one", classes=("cat",))
    assert load_dataset(folder_config(single)).meta["num_classes"] == 1  # a generative run may train on one class
    import deepatlas

    runs = tmp_path / "runs"
    with pytest.raises(DataError, match="only one class \\('cat'\\); a classifier needs at least two"):
        deepatlas.train("quickstart", ["data.name=image-folder", f"data.path={single}"], runs_dir=runs, progress=False)
    assert not runs.exists() or not any(runs.glob("quickstart-*"))  # refused before a run folder exists


def test_test_class_unknown_to_train_fails_at_load(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", classes=("cat", "dog"))
    make_folder(tmp_path / "test", per_class=2, classes=("cat", "dog", "owl"))
    with pytest.raises(DataError) as exc:
        load_dataset(folder_config(tmp_path))  # at load, not only when the test split is read
    assert "class folders ['owl'] are not in the training classes ['cat', 'dog']" in one_line(exc)


def test_header_only_edges_csv_is_refused(tmp_path: Path) -> None:
    edges, nodes = graph_files(tmp_path, NODES, "source,target\n")
    with pytest.raises(DataError) as exc:
        load_edge_list(edges, nodes)
    assert f"{edges}: no edges" in one_line(exc)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_node_feature_names_row_and_column(tmp_path: Path, value: str) -> None:
    edges, nodes = graph_files(tmp_path, NODES.replace("n3,1,3", f"n3,1,{value}"), "source,target\nn0,n1\n")
    with pytest.raises(DataError) as exc:
        load_edge_list(edges, nodes)
    assert f"{nodes}, row 5, column 'f1': '{value}' is not a finite number" in one_line(exc)


def test_link_prediction_on_a_complete_graph_is_refused(tmp_path: Path) -> None:
    pairs = [(f"n{i}", f"n{j}") for i in range(8) for j in range(i + 1, 8)]
    edges, nodes = graph_files(tmp_path, NODES, "source,target\n" + "".join(f"{u},{v}\n" for u, v in pairs))
    config = load_recipe(
        "gcn-cora", ["data.name=graph-csv", f"data.path={edges}", f"data.nodes_path={nodes}", "data.links=true"]
    ).data
    with pytest.raises(DataError, match="no node pair that is not an edge, so no negative examples"):
        load_dataset(config)


def test_tiny_split_is_a_data_error_not_a_sklearn_traceback(tmp_path: Path) -> None:
    edges, nodes = graph_files(tmp_path, "id,label\na,0\nb,1\n", "source,target\na,b\n")
    with pytest.raises(DataError, match="the labelled nodes: 1 examples are too few"):
        load_edge_list(edges, nodes)


def test_crafted_sparse_matrix_is_refused_before_it_is_read(tmp_path: Path) -> None:
    matrix = scipy.sparse.csr_matrix(np.eye(3, dtype=np.float32))
    matrix.indices[:] = 10**6  # toarray() would read far out of bounds (a segfault)
    loaded = safe_unpickle(pickle.dumps(matrix, 4), tmp_path / "ind.x.allx")
    with pytest.raises(DataError, match="ind.x.allx: the sparse matrix.s index arrays are inconsistent"):
        _dense(loaded, tmp_path / "ind.x.allx")


def test_unpickling_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        safe_unpickle(b"P", tmp_path / "ind.x.y")  # persistent id: a two-line message from pickle
    assert "not a readable pickle" in one_line(exc)


def test_folder_named_like_a_text_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "dir.txt").mkdir()
    (tmp_path / "a.txt").write_text("hello")
    assert read_text_path(str(tmp_path))[1] == "hello"


def test_idx_header_with_huge_dimensions_is_refused() -> None:
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (0, 0xA8000000, 0xC30C3100))
    with pytest.raises(DataError, match="implausible dimensions"):
        parse_idx(header, Path("x-idx3-ubyte"))  # zero elements, yet numpy cannot shape it
