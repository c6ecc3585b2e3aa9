"""Issue 16 reproductions: the deep forecasters (MLP, N-BEATS) against the classical ones on the same test origins.

    DEEPATLAS_DATA_DIR=/work/shared/data PYTHONPATH=src python scripts/reproduce_16_forecast_deep.py [ORIGINS] [SEEDS] [SERIES...]

ORIGINS is data.test_origins (default 12, the baselines' table), SEEDS the number of training seeds
(default 3). Each deep model is trained through the engine (recipes mlp-forecast-co2 and nbeats-co2
with data.name=SERIES); its test MASE / sMAPE come from the run's test evaluation, which scores the
same windows with the same per-origin scale as evaluate_forecaster (tests/tasks/test_forecast.py
proves the two agree on seasonal naive). The baselines are refit on the SAME SeriesData. Logs a
markdown table: mean (min-max over seeds) and seconds per run.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time

import numpy as np

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.forecast_baselines import evaluate_forecaster

log = logging.getLogger("reproduce_16_deep")
RECIPES = {"mlp": "mlp-forecast-co2", "nbeats": "nbeats-co2"}


def main(argv: list[str]) -> None:
    numbers = [int(a) for a in argv if a.isdigit()]
    origins, seeds = (numbers + [12, 3][len(numbers):])[:2]
    names = [a for a in argv if not a.isdigit()] or ["co2", "sunspots", "elnino"]
    log.info("| series | origins | forecaster | MASE | sMAPE % | s per run |")
    log.info("|---|---|---|---|---|---|")
    runs_dir = tempfile.mkdtemp(prefix="reproduce16-")
    for name in names:
        overrides = [f"data.name={name}", f"data.test_origins={origins}"]
        data = load_dataset(load_recipe(RECIPES["mlp"], overrides).data)
        n = len(data.origins["test"])
        for fname in ("seasonal-naive", "ets", "arima"):
            start = time.perf_counter()
            s = evaluate_forecaster(fname, data)
            log.info("| %s | %d | %s | %.3f | %.2f | %.1f |", name, n, fname, s["mase"], s["smape"], time.perf_counter() - start)
        for model, recipe in RECIPES.items():
            scores, seconds = [], []
            for seed in range(seeds):
                start = time.perf_counter()
                run = deepatlas.train(recipe, [*overrides, f"train.seed={seed}"], runs_dir=runs_dir, progress=False)
                seconds.append(time.perf_counter() - start)
                test = run.summary["eval"]["test"]
                scores.append((test["mase"], test["smape"]))
            a = np.array(scores)
            log.info("| %s | %d | %s | %.3f (%.3f-%.3f) | %.2f (%.2f-%.2f) | %.1f |", name, n, model, a[:, 0].mean(), a[:, 0].min(),
                     a[:, 0].max(), a[:, 1].mean(), a[:, 1].min(), a[:, 1].max(), float(np.mean(seconds)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(sys.argv[1:])
