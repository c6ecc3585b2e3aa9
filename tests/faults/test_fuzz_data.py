"""Property-based fuzzing of every data reader with generated malformed files.

Each generated case must end in one of two ways: the reader returns data, or it
raises a :class:`DeepAtlasError` whose message is one non-empty line. Any other
exception (a traceback a user would see) fails the test with the case that
caused it. Readers: IDX (Fashion-MNIST), image folders, text files, text pairs, text CSVs,
tables (CSV and Parquet), graph CSVs and the Planetoid pickles through the restricted unpickler.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.data import planetoid as planetoid_module
from deepatlas.data.planetoid import load_planetoid, safe_unpickle
from deepatlas.data.sources import parse_idx
from deepatlas.errors import DeepAtlasError

# DEEPATLAS_FUZZ_EXAMPLES raises the number of cases per reader for a longer hunt.
EXAMPLES = int(os.environ.get("DEEPATLAS_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CPU = torch.device("cpu")


def outcome(call: Callable[[], Any]) -> Any:
    """Run ``call``: its result, or None after a one-line DeepAtlasError; anything else propagates."""
    try:
        return call()
    except DeepAtlasError as exc:
        message = str(exc)
        assert message.strip(), f"{type(exc).__name__} with an empty message"
        assert "\n" not in message, f"multi-line message: {message!r}"
        return None


def with_path(config: Any, **options: Any) -> Any:
    return dataclasses.replace(config, options=dataclasses.replace(config.options, **options))


def exercise(config: Any) -> None:
    """Load the dataset and read what training and evaluation would read."""
    data = load_dataset(config)
    next(iter(data.train_batches(0, 0, CPU)), None)
    for split in ("val", "test"):
        next(iter(data.eval_batches(split, CPU)), None)


def load_one_file(config: Any, name: str, content: bytes, junk: bytes | None) -> None:
    """Exercise ``config`` on a file ``name`` holding ``content``, with ``junk`` bytes spliced into its middle."""
    if junk is not None:
        content = content[: len(content) // 2] + junk + content[len(content) // 2 :]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        outcome(lambda: exercise(with_path(config, path=str(path))))


# --------------------------------------------------------------------------- IDX

idx_bytes = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda kind, dims, delta, fill: (
            bytes([0, 0, kind, len(dims)])
            + b"".join(d.to_bytes(4, "big") for d in dims)
            + bytes([fill]) * min(2048, max(0, math.prod(dims) + delta))  # huge headers: short payloads
        ),
        st.sampled_from([0x08, 0x08, 0x09, 0x0D]),
        st.lists(st.integers(0, 6), max_size=4) | st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3),
        st.integers(-3, 3),
        st.integers(0, 255),
    ),
)


@FUZZ
@given(idx_bytes)
@example(b"\x00\x00\x08\x03\x00\x00\x00\x00\xa8\x00\x00\x00\xc3\x0c1\x00")  # found: empty, yet too big to shape
def test_idx_files(content: bytes) -> None:
    array = outcome(lambda: parse_idx(content, Path("fuzz-idx-ubyte")))
    if array is not None:
        assert array.dtype == np.uint8 and array.nbytes == len(content) - 4 - 4 * content[3]


# --------------------------------------------------------------------------- image folders


def _png(size: tuple[int, int], mode: str, fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode)
    buffer = io.BytesIO()
    img.convert("RGB" if fmt == "JPEG" and mode == "RGBA" else mode).save(buffer, format=fmt)
    return buffer.getvalue()


VALID_PNG = _png((4, 4), "RGB", "PNG", 0)
odd_image = st.one_of(
    st.builds(_png, st.sampled_from([(4, 4), (3, 5), (1, 1), (7, 2)]), st.sampled_from(["L", "RGB", "RGBA"]),
              st.sampled_from(["PNG", "JPEG"]), st.integers(0, 9)),
    st.just(b""),
    st.binary(max_size=40),
    st.builds(lambda cut: VALID_PNG[:cut], st.integers(1, len(VALID_PNG) - 1)),
    st.builds(lambda at, bits: VALID_PNG[:at] + bytes([VALID_PNG[at] ^ bits]) + VALID_PNG[at + 1 :],
              st.integers(0, len(VALID_PNG) - 1), st.integers(1, 255)),
)
CLASSES = ["cat", "dog", "owl", ".hidden", "new"]
# a change to a valid tree: (split, class, file name, content); content None: remove that class folder
image_change = st.tuples(
    st.sampled_from(["train", "test"]), st.sampled_from(CLASSES),
    st.sampled_from(["0.png", "x.png", "y.jpg", "z.JPEG", "notes.txt", "sub/w.png"]), st.none() | odd_image,
)


def _image_tree(classes: int, per_class: int, split: bool, changes: list) -> dict[Path, bytes | None]:
    """Relative path -> content of a valid folder (3 classes of 4x4 PNGs), then the changes applied."""
    tree: dict[Path, bytes | None] = {}
    for split_name in ("train", "test") if split else ("",):
        for c in CLASSES[:classes]:
            for i in range(per_class if split_name != "test" else 2):
                tree[Path(split_name, c, f"{i}.png")] = _png((4, 4), "RGB", "PNG", i)
    for split_name, c, name, content in changes:
        folder = Path(split_name if split else "", c)
        if content is None:
            tree = {k: v for k, v in tree.items() if k.parent != folder}
            tree[folder] = None  # an empty class folder
        else:
            tree[folder / name] = content
    return tree


IMAGE_CONFIGS: dict[tuple[int, bool], Any] = {}


def image_config(channels: int, resize: bool) -> Any:
    if (channels, resize) not in IMAGE_CONFIGS:
        extra = [f"data.channels={channels}"] + (["data.resize=4"] if resize else [])
        IMAGE_CONFIGS[channels, resize] = load_recipe(
            "quickstart", ["data.name=image-folder", "data.path=/nowhere", "data.batch_size=4", "data.num_workers=0", *extra]
        ).data
    return IMAGE_CONFIGS[channels, resize]


@FUZZ
@given(st.integers(1, 3), st.integers(1, 5), st.booleans(), st.lists(image_change, max_size=3),
       st.sampled_from([1, 3]), st.booleans())
def test_image_folders(classes: int, per_class: int, split: bool, changes: list, channels: int, resize: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, content in _image_tree(classes, per_class, split, changes).items():
            if content is None:
                (root / rel).mkdir(parents=True, exist_ok=True)
            else:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(content)
        outcome(lambda: exercise(with_path(image_config(channels, resize), path=str(root))))


# --------------------------------------------------------------------------- text files

text_content = st.one_of(
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=100),
    st.text(alphabet="ab \n", min_size=0, max_size=300).map(str.encode),
)
TEXT_CONFIG = load_recipe(
    "gpt-shakespeare-char",
    ["data.name=text", "data.path=/nowhere", "data.block_size=4", "data.steps_per_epoch=1", "data.batch_size=2"],
).data


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["a.txt", "b.txt", "sub/c.txt", "d.md", "dir.txt/"]), text_content),
                min_size=1, max_size=3), st.booleans())
def test_text_files(files: list[tuple[str, bytes]], folder: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, content in files:
            path = root / name
            if name.endswith("/"):
                path.mkdir(parents=True, exist_ok=True)
            elif not path.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        target = root if folder else root / files[0][0]
        outcome(lambda: exercise(with_path(TEXT_CONFIG, path=str(target))))



# --------------------------------------------------------------------------- text pairs (seq2seq)

PAIRS_CONFIG = load_recipe(
    "transformer-reverse-shakespeare", ["data.name=text-pairs", "data.path=/nowhere", "data.max_len=8", "data.batch_size=4"]
).data
pair_line = st.one_of(
    st.builds(lambda a, b: f"{a}\t{b}", st.text(alphabet="abc ", max_size=10), st.text(alphabet="xyz", max_size=10)),
    st.text(alphabet="ab\t\r ", max_size=8),
)


@FUZZ
@given(st.integers(0, 20), st.lists(pair_line, max_size=4), st.none() | st.binary(max_size=6))
def test_text_pairs(n: int, odd: list[str], junk: bytes | None) -> None:
    content = "".join(f"ab{i}\tyx{i}\n" for i in range(n)).encode() + "\n".join(odd).encode()
    load_one_file(PAIRS_CONFIG, "pairs.tsv", content, junk)


# --------------------------------------------------------------------------- CSV mutations

# a change to a valid CSV: (kind, row, column, value); row and column are taken modulo the table's size
csv_value = st.one_of(
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "x", "0x10", '"quoted, comma"', '"open', "a\tb", "\x00"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="abc ,\"\n\r", max_size=8),
)
csv_change = st.tuples(
    st.sampled_from(["set", "set", "drop", "append", "delete_row", "truncate_rows", "header"]),
    st.integers(0, 50), st.integers(0, 5), csv_value,
)


def _mutated(table: list[list[str]], changes: list[tuple[str, int, int, str]]) -> str:
    """The CSV text of ``table`` (header first) after ``changes``."""
    rows = [list(r) for r in table]
    for kind, r, c, value in changes:
        body = 1 + r % max(1, len(rows) - 1) if len(rows) > 1 else 0
        row = rows[0 if kind == "header" else body] if rows else None
        if row is None:
            continue
        if kind in ("set", "header") and row:
            row[c % len(row)] = value
        elif kind == "drop" and row:
            row.pop(c % len(row))
        elif kind == "append":
            row.append(value)
        elif kind == "delete_row" and len(rows) > 1:
            rows.pop(body)
        elif kind == "truncate_rows":
            rows = rows[: 1 + r % 3]
    return "".join(",".join(r) + "\n" for r in rows)


# --------------------------------------------------------------------------- text CSVs

TEXT_CSV_CONFIG = load_recipe(
    "bert-speakers-shakespeare",
    ["data.name=text-csv", "data.path=/nowhere", "data.block_size=8", "data.batch_size=4", "data.test_fraction=0.2"],
).data


@FUZZ
@given(st.integers(2, 30), st.lists(csv_change, max_size=3), st.none() | st.binary(max_size=6))
def test_text_csvs(n: int, changes: list, junk: bytes | None) -> None:
    table = [["text", "label"]] + [[f"words {i} here", ["pos", "neg", "meh"][i % 3]] for i in range(n)]
    load_one_file(TEXT_CSV_CONFIG, "labels.csv", _mutated(table, changes).encode(), junk)


# --------------------------------------------------------------------------- tables (CSV and Parquet)

TABLE_CONFIGS = {
    kind: load_recipe("quickstart", ["data.name=table", "data.path=/nowhere", *extra]).data
    for kind, extra in {
        "class": ["data.target=label", "data.categorical=[colour]"],
        "real": ["data.target=y"],
        "survival": ["data.target=time", "data.event=event", "data.folds=3", "data.fold=2"],
    }.items()
}


@FUZZ
@given(st.integers(2, 30), st.sampled_from(sorted(TABLE_CONFIGS)), st.lists(csv_change, max_size=3),
       st.none() | st.binary(max_size=6), st.booleans())
def test_tables(n: int, kind: str, changes: list, junk: bytes | None, parquet: bool) -> None:
    table = [["x", "colour", "y", "label", "time", "event"]] + [
        [f"{(i * 7) % 11 / 3:.3f}", ["red", "blue", ""][i % 3], f"{i * 0.5:.2f}", ["yes", "no"][i % 2], str(1 + i), str(i % 2)]
        for i in range(n)
    ]
    text = _mutated(table, changes)
    if not parquet:
        load_one_file(TABLE_CONFIGS[kind], "rows.csv", text.encode(), junk)
        return
    import pandas as pd

    try:
        frame = pd.read_csv(io.StringIO(text))
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
    except Exception:  # not a table pandas can write: the CSV path above covers such text
        return
    load_one_file(TABLE_CONFIGS[kind], "rows.parquet", buffer.getvalue(), junk)


# --------------------------------------------------------------------------- graph CSVs

GRAPH_CONFIGS = {
    links: load_recipe(
        "gcn-cora",
        ["data.name=graph-csv", "data.path=/nowhere", "data.nodes_path=/nowhere", *(["data.links=true"] if links else [])],
    ).data
    for links in (False, True)
}


@FUZZ
@given(st.integers(2, 16), st.integers(0, 30), st.booleans(), st.lists(csv_change, max_size=2),
       st.lists(csv_change, max_size=2), st.booleans(), st.integers(0, 9))
def test_graph_csvs(n: int, m: int, weighted: bool, node_changes: list, edge_changes: list, links: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    nodes = [["id", "label", "f1", "f2"]] + [
        [f"n{i}", "" if i % 5 == 4 else str(i % 2), str(rng.integers(0, 3)), f"{rng.random():.3f}"] for i in range(n)
    ]
    edges = [["source", "target", *(["weight"] if weighted else [])]] + [
        [f"n{rng.integers(n)}", f"n{rng.integers(n)}", *([f"{rng.random():.2f}"] if weighted else [])] for _ in range(m)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        nodes_path, edges_path = Path(tmp) / "nodes.csv", Path(tmp) / "edges.csv"
        nodes_path.write_text(_mutated(nodes, node_changes))
        edges_path.write_text(_mutated(edges, edge_changes))
        config = with_path(GRAPH_CONFIGS[links], path=str(edges_path), nodes_path=str(nodes_path))
        outcome(lambda: exercise(config))


# --------------------------------------------------------------------------- Planetoid pickles


def _small_planetoid(seed: int) -> dict[str, Any]:
    """The eight Planetoid parts of a tiny valid graph: 2 train, 4 allx, 3 test nodes, 2 classes."""
    import scipy.sparse

    rng = np.random.default_rng(seed)
    one_hot = np.eye(2, dtype=np.int64)
    return {
        "x": scipy.sparse.csr_matrix(rng.integers(0, 2, (2, 3)).astype(np.float32)),
        "y": one_hot[[0, 1]],
        "allx": scipy.sparse.csr_matrix(rng.integers(0, 2, (4, 3)).astype(np.float32)),
        "ally": one_hot[[0, 1, 0, 1]],
        "tx": scipy.sparse.csr_matrix(rng.integers(0, 2, (3, 3)).astype(np.float32)),
        "ty": one_hot[[1, 0, 1]],
        "graph": {0: [1, 2], 1: [0, 4], 2: [0], 3: [5, 6], 4: [1], 5: [3], 6: [3]},
        "test.index": "\n".join(str(i) for i in rng.permutation([4, 5, 6])) + "\n",
    }


def _encode(part: str, obj: Any, protocol: int) -> bytes:
    return obj.encode() if part == "test.index" else pickle.dumps(obj, protocol=protocol)  # >= 3: no _codecs


PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
odd_object = st.one_of(
    st.none(), st.integers(-3, 10**20), st.text(max_size=5), st.lists(st.integers(-2, 9), max_size=4),
    st.dictionaries(st.integers(-2, 9) | st.text(max_size=2), st.lists(st.integers(-2, 9)) | st.integers(), max_size=4),
    st.builds(lambda r, c: np.ones((r, c)), st.integers(0, 5), st.integers(0, 4)),
    st.builds(lambda n: np.arange(n), st.integers(0, 5)),
    st.just(np.array([["a", "b"]])), st.just(np.array([[np.nan, 1.0]])), st.just(np.full((2, 2), 2)),
)
damage = st.one_of(
    st.tuples(st.just("object"), odd_object),
    st.tuples(st.just("truncate"), st.integers(0, 200)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4)),
    st.tuples(st.just("bytes"), st.binary(max_size=60)),
)


def _as_lines(obj: Any) -> str:
    """An odd object as the lines of a test.index file."""
    values = np.ravel(obj) if isinstance(obj, (list, np.ndarray)) else [obj]
    return "\n".join(str(v) for v in values)


def _damaged(part: str, content: bytes, how: tuple[str, Any]) -> bytes:
    kind, arg = how
    if kind == "object":
        return _encode(part, arg if part != "test.index" else _as_lines(arg), 4)
    if kind == "truncate":
        return content[:arg]
    if kind == "flip":
        data = bytearray(content)
        for at, bits in arg:
            if data:
                data[at % len(data)] ^= bits
        return bytes(data)
    return arg


@FUZZ
@given(st.integers(0, 3), st.sampled_from([3, 4]), st.dictionaries(st.sampled_from(PARTS), damage, max_size=2))
@example(0, 3, {"ally": ("object", np.ones((4, 0)))})  # found: argmax of an empty sequence
@example(0, 4, {"y": ("flip", [(238, 127)])})  # found: a newline in a refused global's name
def test_planetoid_files(seed: int, protocol: int, damaged: dict[str, tuple[str, Any]]) -> None:
    files = {p: _encode(p, obj, protocol) for p, obj in _small_planetoid(seed).items()}
    files.update({p: _damaged(p, files[p], how) for p, how in damaged.items()})

    def serve(name: str, part: str, root: str | None = None) -> tuple[Path, bytes]:
        return Path(f"ind.{name}.{part}"), files[part]

    with mock.patch.object(planetoid_module, "planetoid_file", serve):
        graph = outcome(lambda: load_planetoid("cora"))
    if not damaged:
        assert graph is not None and graph.x.shape == (7, 3)  # the undamaged graph must load


@FUZZ
@given(st.binary(max_size=200) | st.builds(lambda n: pickle.dumps(_small_planetoid(0)["allx"], 4)[:n], st.integers(0, 400)))
@example(b"P")  # found: a two-line message from pickle
def test_restricted_unpickler_on_garbage(content: bytes) -> None:
    outcome(lambda: safe_unpickle(content, Path("ind.fuzz.x")))
