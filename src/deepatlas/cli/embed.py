"""``deepatlas embed`` and ``deepatlas search-images``: an image-text run (CLIP) on your own images and words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import DataError, DeepAtlasError
from .common import RUNS_DIR
from .format import out

app = typer.Typer()

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@app.command()
def embed(
    run: str = typer.Argument(..., help="Run id, prefix or folder, or an export folder, of an image-text (CLIP) run."),
    text: Optional[list[str]] = typer.Option(None, "--text", "-t", help="A caption to embed (repeat for several)."),
    image: Optional[list[Path]] = typer.Option(None, "--image", "-i", help="A PNG/JPEG file to embed (repeat for several)."),
    output: Path = typer.Option(Path("embeddings.npy"), "--out", "-o", help="The .npy file to write (N, D), float32."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (default: the run's)."),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Write the L2-normalised embeddings of captions (`--text`) or images (`--image`) as a .npy file, one row each."""
    import numpy as np

    from ..io import atomic_path
    from ..predict import load

    if bool(text) == bool(image):
        raise DeepAtlasError("embed: give captions with --text or images with --image (one kind per call).")
    if output.suffix != ".npy":
        raise DeepAtlasError(f"--out: {output} must end in .npy (e.g. --out embeddings.npy).")
    for path in image or ():
        if not path.is_file():
            raise DataError(f"--image: {path} is not a file.")
    predictor = load(run, device=device, checkpoint=checkpoint, runs_dir=runs_dir)
    vectors = predictor.encode_text(list(text)) if text else predictor.encode_image(list(image or ()))
    with atomic_path(output) as tmp, open(tmp, "wb") as f:
        np.save(f, vectors.astype(np.float32))
    kind = "captions" if text else "images"
    out.print(f"wrote {len(vectors)} {kind} x {vectors.shape[1]} dimensions to {output}", markup=False)


@app.command("search-images")
def search_images(
    run: str = typer.Argument(..., help="Run id, prefix or folder, or an export folder, of an image-text (CLIP) run."),
    folder: Path = typer.Argument(..., help="Folder of PNG/JPEG images (searched recursively)."),
    query: str = typer.Argument(..., help='What to look for, in words: "a photo of a sneaker".'),
    top: int = typer.Option(10, "--top", "-k", min=1, help="How many images to list."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (default: the run's)."),
    runs_dir: Optional[Path] = RUNS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the ranking as JSON."),
) -> None:
    """Rank the images of a folder by how well they match a text query (cosine similarity of CLIP embeddings)."""
    import numpy as np

    from ..predict import load

    if not folder.is_dir():
        raise DataError(f"FOLDER: {folder} is not a folder of images.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"FOLDER: no PNG/JPEG images in {folder}.")
    predictor = load(run, device=device, checkpoint=checkpoint, runs_dir=runs_dir)
    target = predictor.encode_text(query)[0]
    scores = np.concatenate([predictor.encode_image(files[i : i + 256]) @ target for i in range(0, len(files), 256)])
    order = np.argsort(-scores, kind="stable")[:top]
    rows = [{"rank": r + 1, "image": str(files[i]), "score": round(float(scores[i]), 6)} for r, i in enumerate(order)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for row in rows:
        out.print(f"{row['rank']:>3}  {row['score']:.4f}  {row['image']}", markup=False, soft_wrap=True)
