"""Fashion-MNIST: the IDX reader, checksums, the search order and a verified atomic download."""

from __future__ import annotations

import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset, sources
from deepatlas.data.sources import FASHION_MNIST_SYSTEM_DIR, fashion_mnist_file, parse_idx
from deepatlas.errors import DataError


def idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_idx_round_trip() -> None:
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx(a), Path("x")), a)


def test_idx_errors_name_the_file() -> None:
    with pytest.raises(DataError, match="f.idx: not an IDX file"):
        parse_idx(b"\x00\x00\x09\x01abcd", Path("f.idx"))
    with pytest.raises(DataError, match=r"f.idx: IDX file has \d+ bytes"):
        parse_idx(idx(np.zeros((2, 3)))[:-1], Path("f.idx"))


def test_corrupt_file_in_data_dir_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(idx(np.zeros(10_000)))
    monkeypatch.setenv("DEEPATLAS_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: content checksum mismatch.*Delete it"):
        fashion_mnist_file("t10k-labels-idx1-ubyte", None)


def test_truncated_gzip_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"x" * 1000)[:20])
    monkeypatch.setenv("DEEPATLAS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: cannot read"):
        fashion_mnist_file("t10k-labels-idx1-ubyte", None)


@pytest.mark.usefixtures("fashion_mnist")
def test_data_dir_is_searched_before_system_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    source = next(p for p in (FASHION_MNIST_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz",) if p.exists())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(source.read_bytes()))  # decompressed copy
    monkeypatch.setenv("DEEPATLAS_DATA_DIR", str(tmp_path))
    labels = fashion_mnist_file("t10k-labels-idx1-ubyte", None)
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))


@pytest.mark.usefixtures("fashion_mnist")
def test_download_verifies_checksum_and_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(FASHION_MNIST_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz", served)
    (served / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not fashion"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(sources, "FASHION_MNIST_URL", f"http://127.0.0.1:{server.server_port}/")
        monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
        labels = fashion_mnist_file("t10k-labels-idx1-ubyte", None)
        assert labels.shape == (10_000,)
        cached = tmp_path / "cache" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
        assert cached.is_file()
        with pytest.raises(DataError, match="checksum mismatch"):
            fashion_mnist_file("t10k-images-idx3-ubyte", None)
        leftovers = sorted(p.name for p in cached.parent.iterdir())
        assert leftovers == ["t10k-labels-idx1-ubyte.gz"], "a failed download leaves nothing behind"
        with pytest.raises(DataError, match="download failed"):
            fashion_mnist_file("train-labels-idx1-ubyte", None)  # 404
    finally:
        server.shutdown()


@pytest.mark.usefixtures("fashion_mnist")
def test_fashion_mnist_loads_with_official_sizes() -> None:
    data = load_dataset(load_recipe("resnet20-fashion-mnist").data)
    assert data.meta["sizes"] == {"train": 54_000, "val": 6_000}
    assert data.meta["num_classes"] == 10 and data.meta["input_size"] == 28 and data.meta["in_channels"] == 1
    assert len(data.split("test")) == 10_000
