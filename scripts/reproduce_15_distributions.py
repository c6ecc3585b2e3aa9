"""Issue 15 reproductions: held-out NLL of distribution heads against statsmodels GLMs on the same folds.

    DEEPATLAS_DATA_DIR=/work/shared/data PYTHONPATH=src python scripts/reproduce_15_distributions.py engel
    ... randhie

Writes a JSON of every cross-validation summary next to the run store and logs a table.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time

from deepatlas.crossval import crossval

EXPERIMENTS = {
    "engel": [
        ("normal (heteroscedastic)", "recipes/heteroscedastic-engel.yaml", [], ["glm"]),
        ("normal-fixed (homoscedastic)", "recipes/heteroscedastic-engel.yaml", ["task.distribution=normal-fixed"], []),
    ],
    "diabetes": [
        ("normal (heteroscedastic)", "recipes/heteroscedastic-engel.yaml", ["data.name=diabetes"], ["glm"]),
        ("normal-fixed (homoscedastic)", "recipes/heteroscedastic-engel.yaml", ["data.name=diabetes", "task.distribution=normal-fixed"], []),
    ],
    "engel-families": [
        ("laplace", "recipes/heteroscedastic-engel.yaml", ["task.distribution=laplace"], []),
        ("student-t", "recipes/heteroscedastic-engel.yaml", ["task.distribution=student-t"], []),
        ("gamma", "recipes/heteroscedastic-engel.yaml", ["task.distribution=gamma"], ["glm"]),
        ("log-normal", "recipes/heteroscedastic-engel.yaml", ["task.distribution=log-normal"], ["glm"]),
    ],
    "diabetes-small": [
        ("normal (heteroscedastic)", "recipes/heteroscedastic-diabetes.yaml", [], ["glm"]),
        ("normal-fixed (homoscedastic)", "recipes/heteroscedastic-diabetes.yaml", ["task.distribution=normal-fixed"], []),
    ],
    "randhie": [
        ("poisson", "recipes/poisson-randhie.yaml", [], ["glm"]),
        ("negative-binomial", "recipes/negbin-randhie.yaml", [], ["glm"]),
    ],
}


def main(name: str, folds: int = 5) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = {}
    runs = tempfile.mkdtemp(prefix=f"repro15-{name}-")
    for label, recipe, overrides, baselines in EXPERIMENTS[name]:
        start = time.perf_counter()
        result = crossval(recipe, overrides, folds=folds, baselines=baselines, runs_dir=runs)
        seconds = time.perf_counter() - start
        summary = result.summary()
        out[label] = {"summary": summary, "seconds": result.seconds, "wall": seconds, "metrics": result.metrics}
        for method, metrics in summary.items():
            row = "  ".join(f"{k} {m:.4f}+-{s:.4f}" for k, (m, s) in metrics.items() if k in ("nll", "rmse", "crps", "coverage90", "width90"))
            logging.info("%-30s %-7s %s  (%.0f s)", label, method, row, result.seconds.get(method, 0.0))
    with open(f"{runs}/repro15-{name}.json", "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, default=str)
    logging.info("wrote %s/repro15-%s.json", runs, name)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
