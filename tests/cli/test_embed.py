"""`deepatlas embed` and `deepatlas search-images` on a tiny trained CLIP run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from deepatlas.cli import app
from tests.tasks.test_clip import pairs_run  # noqa: F401  (the module-scoped tiny run)

runner = CliRunner()


def test_embed_text_and_images_to_npy(pairs_run, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "text.npy"
    result = runner.invoke(app, ["embed", str(pairs_run.path), "--text", "a square at the top", "-t", "a square at the bottom", "--out", str(out)])
    assert result.exit_code == 0, result.output
    vectors = np.load(out)
    assert vectors.shape == (2, 16) and vectors.dtype == np.float32 and "wrote 2 captions" in result.output
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    images = sorted((pairs_run.path.parent.parent / "pairs").glob("*.png"))[:3]
    result = runner.invoke(app, ["embed", str(pairs_run.path), *[a for p in images for a in ("--image", str(p))], "-o", str(tmp_path / "img.npy")])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "img.npy").shape == (3, 16)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temporary left


def test_embed_errors(pairs_run, tmp_path: Path) -> None:  # noqa: F811
    both = runner.invoke(app, ["embed", str(pairs_run.path), "--text", "a", "--image", "x.png"])
    assert both.exit_code != 0 and "one kind per call" in str(both.exception)
    assert "must end in .npy" in str(runner.invoke(app, ["embed", str(pairs_run.path), "-t", "a", "-o", str(tmp_path / "x.txt")]).exception)
    assert "is not a file" in str(runner.invoke(app, ["embed", str(pairs_run.path), "--image", str(tmp_path / "missing.png")]).exception)


def test_search_images_ranks_the_matching_images_first(pairs_run) -> None:  # noqa: F811
    folder = pairs_run.path.parent.parent / "pairs"
    result = runner.invoke(app, ["search-images", str(pairs_run.path), str(folder), "a square at the top", "--top", "8", "--json", "--checkpoint", "last"])
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.output)
    assert [r["rank"] for r in rows] == list(range(1, 9))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    top = [int(Path(r["image"]).stem) % 2 == 0 for r in rows]
    assert sum(top) >= 7  # the even images have the square at the top
    plain = runner.invoke(app, ["search-images", str(pairs_run.path), str(folder), "a square at the bottom", "-k", "2", "--checkpoint", "last"])
    assert plain.exit_code == 0 and len(plain.output.strip().splitlines()) == 2
    empty = runner.invoke(app, ["search-images", str(pairs_run.path), str(folder / "nothing"), "x"])
    assert "is not a folder" in str(empty.exception)
