"""Issue 21 reproductions: mixup and CutMix on the ResNet-20 recipe, and a deep ensemble against one model.

    DEEPATLAS_DATA_DIR=/work/shared/data PYTHONPATH=src python scripts/reproduce_21_techniques.py \
        [--epochs N] [--seeds 3] [--members 5] [--techniques mixup,cutmix] [--no-ensemble] [--set KEY=VALUE ...]

Every run is the recipe ``resnet20-fashion-mnist`` (ResNet-20, SGD + Nesterov, cosine; 40 epochs as
written, ``--epochs`` to shorten), each technique over seeds 0..S-1 (``train.seed``: initialisation and
data order), against the same seeds of the plain recipe:

- mixup (Zhang et al. 2018): ``task.mixup_alpha`` (default 1.0, their CIFAR-10 setting);
- CutMix (Yun et al. 2019): ``task.cutmix_alpha`` (default 1.0, their CIFAR setting), every batch mixed.

Both papers report lower test error than the baseline and (Zhang et al., Thulasidasan et al. 2019) better
calibration; the table gives the test accuracy and ECE of each technique (mean +- std over the seeds)
and their change from the baseline. The deep ensemble (Lakshminarayanan et al. 2017) averages the
predicted probabilities of M plain runs (seeds 0..M-1; the baseline runs are reused) and is compared,
on the test split, with its members (mean +- std): accuracy, NLL and ECE. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

import deepatlas

log = logging.getLogger("reproduce_21_techniques")
RECIPE = "resnet20-fashion-mnist"


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def shown(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:.4f} +- {s:.4f}"


def train(seed: int, extra: list[str], args: argparse.Namespace) -> Any:
    overrides = [f"train.seed={seed}", *extra, *([f"train.epochs={args.epochs}"] if args.epochs else []), *args.set]
    start = time.perf_counter()
    run = deepatlas.train(RECIPE, overrides, runs_dir=args.runs_dir, progress=False)
    if run.status != "completed":
        raise SystemExit(f"run {run.id} ({' '.join(overrides)}) {run.status}: {run.summary.get('reason')}")
    log.info("seed %d %s: %s (%.0f s, run %s)", seed, " ".join(extra) or "baseline", run.summary["eval"]["test"],
             time.perf_counter() - start, run.id)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the recipe's 40)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per technique and for the baseline")
    parser.add_argument("--members", type=int, default=5, help="members of the deep ensemble")
    parser.add_argument("--techniques", default="mixup,cutmix", help="any of mixup,cutmix (comma-separated)")
    parser.add_argument("--mixup-alpha", type=float, default=1.0)
    parser.add_argument("--cutmix-alpha", type=float, default=1.0)
    parser.add_argument("--no-ensemble", action="store_true", help="skip the deep ensemble")
    parser.add_argument("--runs-dir", default=None, help="run store (default: $DEEPATLAS_RUNS_DIR, else ./runs)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = {"mixup": [f"task.mixup_alpha={args.mixup_alpha}"], "cutmix": [f"task.cutmix_alpha={args.cutmix_alpha}"]}
    techniques = [t for t in args.techniques.split(",") if t]
    unknown = [t for t in techniques if t not in settings]
    if unknown:
        parser.error(f"--techniques: unknown {', '.join(unknown)} (allowed: mixup, cutmix)")

    plain_seeds = range(max(args.seeds, 0 if args.no_ensemble else args.members))
    plain = {seed: train(seed, [], args) for seed in plain_seeds}
    results = {"baseline": [plain[s] for s in range(args.seeds)]}
    for technique in techniques:
        results[technique] = [train(seed, settings[technique], args) for seed in range(args.seeds)]

    def metric(runs: list[Any], key: str) -> list[float]:
        return [float(r.summary["eval"]["test"][key]) for r in runs]

    base_acc, base_ece = mean_std(metric(results["baseline"], "accuracy"))[0], mean_std(metric(results["baseline"], "ece"))[0]
    lines = [
        f"\n{RECIPE}, {args.epochs or 'the recipe'} epochs, {args.seeds} seeds, test split",
        "| technique | test accuracy | change | test ECE | change | test NLL |", "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        acc, ece, nll = metric(runs, "accuracy"), metric(runs, "ece"), metric(runs, "nll")
        lines.append(f"| {name} | {shown(acc)} | {mean_std(acc)[0] - base_acc:+.4f} | {shown(ece)} | "
                     f"{mean_std(ece)[0] - base_ece:+.4f} | {shown(nll)} |")
    if not args.no_ensemble:
        members = [plain[s] for s in range(args.members)]
        evaluation = deepatlas.ensemble([r.path for r in members]).evaluate("test")
        lines += [
            f"\ndeep ensemble of {args.members} plain runs (seeds 0..{args.members - 1}), test split",
            "| model | accuracy | NLL | ECE |", "|---|---|---|---|",
            "| single model (members) | " + " | ".join(shown([m[k] for m in evaluation.members.values()])
                                                     for k in ("accuracy", "nll", "ece")) + " |",
            f"| ensemble of {args.members} | " + " | ".join(f"{evaluation.ensemble[k]:.4f}" for k in ("accuracy", "nll", "ece")) + " |",
        ]
    log.info("\n".join(lines))


if __name__ == "__main__":
    main()
