"""``deepatlas explain``: which pixels an image classifier's decision depends on, as an overlay PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import RUNS_DIR
from .format import out

app = typer.Typer()


@app.command()
def explain(
    run: str = typer.Argument(..., help="Run id, prefix or folder of an image classifier (or an export folder)."),
    image: Path = typer.Option(..., "--input", "-i", help="An image file (PNG/JPEG); resized like the run's data."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="saliency, integrated-gradients, gradcam or rollout "
                                         "(default: rollout for a Transformer, gradcam for a CNN, else saliency)."),
    target: Optional[str] = typer.Option(None, "--target", help="Class to explain (name or index; default: the predicted one)."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Grad-CAM: a module name (default: the last 2-D feature map)."),
    steps: int = typer.Option(50, "--steps", help="Integrated gradients: quadrature steps."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Overlay PNG (default: <image>-<method>.png)."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (default: the run's)."),
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Explain an image classifier's prediction: `deepatlas explain RUN --input shoe.png --method gradcam`."""
    import torch

    from ..errors import ConfigError, DataError
    from ..explain import METHODS, default_method, explain, find_layer
    from ..predict import load
    from ..report.plots import plot_attribution

    if not image.is_file():
        raise DataError(f"--input: {image} is not a file.")
    predictor = load(run, device=device, runs_dir=runs_dir)
    if predictor.preprocessor.kind != "images" or predictor.task.predicts != "labels":
        raise ConfigError(f"{predictor.source}: explain needs an image classifier; this run predicts {predictor.task.predicts}.")
    x = predictor.preprocess([image])
    names = predictor.class_names or []
    with torch.no_grad():
        probabilities = predictor.model(x).softmax(dim=1)[0]
    if target is None:
        index = int(probabilities.argmax())
    elif target in names:
        index = names.index(target)
    elif target.isdigit() and int(target) < len(probabilities):
        index = int(target)
    else:
        raise ConfigError(f"--target: {target!r} is not a class of this run ({', '.join(names) or f'0..{len(probabilities) - 1}'}).")
    options: dict[str, object] = {}
    method = method or default_method(predictor.model)
    if method not in METHODS:
        explain(predictor.model, x, method)  # raises the one-line error naming the allowed methods
    if method == "gradcam" and layer:
        options["layer"] = find_layer(predictor.model, layer)
    if method == "integrated-gradients":
        options["steps"] = steps
    heat = explain(predictor.model, x, method, index, **options)[0].cpu()
    pre = predictor.preprocessor
    shown = x[0].cpu() * torch.tensor(pre.std)[:, None, None] + torch.tensor(pre.mean)[:, None, None]  # back to 0..1
    label = names[index] if names else str(index)
    path = output or image.with_name(f"{image.stem}-{method}.png")
    plot_attribution(shown.cpu().numpy(), heat.cpu().numpy(), path, title=f"{method}: {label} (p = {float(probabilities[index]):.3f})")
    out.print(f"{path}: {method} for class {label} (p = {float(probabilities[index]):.3f})", markup=False)
