"""Issue 17 reproductions: frozen representations of SimCLR, BYOL, MoCo v2 and MAE on Fashion-MNIST.

    DEEPATLAS_DATA_DIR=/work/shared/data PYTHONPATH=src python scripts/reproduce_17_ssl.py \
        [--budget short|full] [--methods simclr,byol,moco,mae] [--no-supervised] [--set KEY=VALUE ...]

Trains each method through the engine (recipes simclr-, byol-, moco-, mae-fashion-mnist; ``full``:
as written, 100 epochs; ``short``: a few hundred optimizer steps, minutes on one CPU core) and the
supervised ResNet-20 (recipe resnet20-fashion-mnist; ``short``: 2 epochs), then scores every
representation with ONE protocol (deepatlas.metrics.representation, the ssl task's defaults):
a logistic-regression probe (standardised features, L2 1e-4, full-batch L-BFGS, 200 iterations)
and a weighted 20-NN vote (cosine, T = 0.07; Wu et al. 2018), fitted on the 54,000 training
images (the training split after the 6,000-image validation hold-out) and scored on the 10,000
test images. Baselines on the same splits: raw pixels, a randomly initialised ResNet-20 and MAE
ViT (seed 0), and the supervised ResNet-20's penultimate features. The SSL runs' numbers are their
own test evaluation (the ssl task computes them with the same functions). Logs a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

import torch

import deepatlas
from deepatlas.build import load_trained_model, run_task
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.metrics.representation import extract_features, fit_linear_probe, knn_accuracy
from deepatlas.models.ssl import build_encoder
from deepatlas.registry import create_model
from deepatlas.tasks.ssl import SSLConfig

log = logging.getLogger("reproduce_17_ssl")
RECIPES = {m: f"{m}-fashion-mnist" for m in ("simclr", "byol", "moco", "mae")}
STEP_SCHEDULE = ["schedule.unit=step", "schedule.warmup=20"]
#: the short budget: about five minutes of training per method on one core of a busy 2-core machine
SHORT = {
    "simclr": ["train.max_steps=180", *STEP_SCHEDULE],
    "byol": ["train.max_steps=130", *STEP_SCHEDULE],  # model.tau_steps: bound to the 130 steps
    "moco": ["train.max_steps=130", *STEP_SCHEDULE],
    "mae": ["train.max_steps=300", *STEP_SCHEDULE],
}
SUPERVISED = "resnet20-fashion-mnist"
SUPERVISED_SHORT = ["train.epochs=2"]


def score(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """The ssl task's protocol, with its default settings."""
    c = SSLConfig()
    probe = fit_linear_probe(*train, 10, c.probe_l2, c.probe_iterations)
    return {
        "linear_probe": probe.accuracy(*test),
        "knn": knn_accuracy(*train, *test, 10, c.knn_k, c.knn_temperature, c.knn_weighted),
    }


def features(encode: Callable[[torch.Tensor], torch.Tensor], data: Any) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    cpu = torch.device("cpu")
    with torch.no_grad():
        return extract_features(encode, data.eval_batches("train", cpu)), extract_features(encode, data.eval_batches("test", cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=("short", "full"), default="short")
    parser.add_argument("--methods", default="simclr,byol,moco,mae")
    parser.add_argument("--no-supervised", action="store_true", help="skip training the supervised ResNet-20")
    parser.add_argument("--no-baselines", action="store_true", help="skip pixels and random encoders")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows: list[tuple[str, str, dict[str, float], float]] = []

    for method in [m for m in args.methods.split(",") if m]:
        overrides = [*(SHORT[method] if args.budget == "short" else []), *args.set]
        start = time.perf_counter()
        run = deepatlas.train(RECIPES[method], overrides, progress=False)
        seconds = time.perf_counter() - start
        test = run.summary["eval"]["test"]
        log.info("%s: %s %s (%.0f s, run %s)", method, run.status, test, seconds, run.id)
        rows.append((method, run.id, test, seconds))

    data = load_dataset(load_recipe(RECIPES["simclr"]).data)  # pixels in [0, 1]: the SSL runs' inputs and splits
    if not args.no_baselines:
        start = time.perf_counter()
        rows.append(("raw pixels", "-", score(*features(lambda x: x.flatten(1), data)), time.perf_counter() - start))
        for name, build in (
            ("random ResNet-20", lambda: build_encoder("resnet20", 1, 28)),
            ("random MAE ViT", lambda: create_model("mae")),
        ):
            torch.manual_seed(0)
            model = build().eval()
            start = time.perf_counter()
            rows.append((name, "-", score(*features(model.forward_features, data)), time.perf_counter() - start))
            log.info("%s: %s", name, rows[-1][2])

    if not args.no_supervised:
        overrides = [*(SUPERVISED_SHORT if args.budget == "short" else []), *args.set]
        start = time.perf_counter()
        run = deepatlas.train(SUPERVISED, overrides, progress=False)
        seconds = time.perf_counter() - start
        model, _, _, _ = load_trained_model(run, run.config, run_task(run), "best")
        model.eval()
        own = load_dataset(run.config.data)  # its own (standardised) inputs, the same split
        result = {**score(*features(model.forward_features, own)), "accuracy": run.summary["eval"]["test"]["accuracy"]}
        rows.append(("supervised ResNet-20", run.id, result, seconds))
        log.info("supervised: %s", result)

    log.info("\n| representation | run | linear probe | 20-NN | test loss / accuracy | seconds |\n|---|---|---|---|---|---|")
    for name, run_id, m, seconds in rows:
        extra = f"loss {m['loss']:.4f}" if "loss" in m else (f"accuracy {m['accuracy']:.4f}" if "accuracy" in m else "")
        log.info("| %s | %s | %.4f | %.4f | %s | %.0f |", name, run_id, m["linear_probe"], m["knn"], extra, seconds)


if __name__ == "__main__":
    main()
