"""Finding dataset files: the data directory, system locations, then a verified download.

Search order for a dataset's files (first hit wins):
1. ``data.root`` from the recipe, else the ``DEEPATLAS_DATA_DIR`` environment variable;
2. known system locations (e.g. Debian's ``dataset-fashion-mnist`` package);
3. the download cache (``DEEPATLAS_CACHE_DIR``, default ``~/.cache/deepatlas``);
4. a download from the upstream URL, checked against a sha256 and written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError
from ..io import atomic_path

log = logging.getLogger(__name__)


def data_roots(root: str | None = None) -> list[Path]:
    """The user's data directories, most specific first."""
    roots = []
    for candidate in (root, os.environ.get("DEEPATLAS_DATA_DIR")):
        if candidate:
            roots.append(Path(candidate).expanduser())
    return roots


def cache_dir() -> Path:
    """Where downloads go: ``$DEEPATLAS_CACHE_DIR`` or ``~/.cache/deepatlas``."""
    return Path(os.environ.get("DEEPATLAS_CACHE_DIR", Path.home() / ".cache" / "deepatlas")).expanduser()


def find_file(names: Sequence[str], folders: Sequence[Path]) -> Path | None:
    """The first existing ``folder/name`` over folders (outer) and names (inner)."""
    for folder in folders:
        for name in names:
            path = folder / name
            if path.is_file():
                return path
    return None


def read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, decompressed if it is gzip; a broken archive names the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is damaged, delete it to fetch it again.") from None


def check_sha256(path: Path, content: bytes, expected: str | None) -> None:
    if expected is None:
        return
    got = hashlib.sha256(content).hexdigest()
    if got != expected:
        raise DataError(
            f"{path}: content checksum mismatch (sha256 {got[:16]}..., expected {expected[:16]}...); "
            "the file is corrupt or not the expected dataset. Delete it to download it again."
        )


def download(url: str, dest: Path, *, sha256_of_content: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying the (decompressed) content's sha256."""
    log.info("downloading %s -> %s", url, dest)
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
            check_sha256(Path(url), read_maybe_gzip(tmp), sha256_of_content)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(f"{url}: download failed ({exc}); put the file in $DEEPATLAS_DATA_DIR instead.") from None
    return dest
