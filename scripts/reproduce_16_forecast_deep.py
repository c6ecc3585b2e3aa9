"""Issue 16 reproductions: the deep forecasters against the classical ones on the same test origins.

    DEEPATLAS_DATA_DIR=/work/shared/data PYTHONPATH=src python scripts/reproduce_16_forecast_deep.py \
        [--seeds N] [--models mlp,lstm,transformer,nbeats] [--conformal K] [--set KEY=VALUE ...] [SERIES...]

Each deep model is trained through the engine (recipes mlp-forecast-co2, lstm-forecast-co2,
transformer-forecast-co2, nbeats-co2 with data.name=SERIES and the series' evaluation settings
below); its test MASE / sMAPE come from the run's test evaluation, which scores the same windows
with the same per-origin scale as evaluate_forecaster (tests/tasks/test_forecast.py proves the two
agree on seasonal naive). The baselines are refit on the SAME SeriesData. Logs a markdown table:
mean (min-max over seeds) and seconds per run.

``--conformal K``: train with data.calibration_windows=K (K windows before the validation origins
held out of training) and also report the test coverage and width of the per-step conformal 90%
intervals, next to ETS's and ARIMA's Gaussian 90% intervals on the same origins. ``--set`` passes
any recipe override to every deep run (``--set task.distribution=normal``: Gaussian forecasts; their
band's coverage and width are reported when the run is not calibrated, and the CRPS column filled).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import numpy as np

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.forecast_baselines import evaluate_forecaster

log = logging.getLogger("reproduce_16_deep")
RECIPES = {"mlp": "mlp-forecast-co2", "lstm": "lstm-forecast-co2", "transformer": "transformer-forecast-co2", "nbeats": "nbeats-co2"}
#: the evaluation of each series: 12 test origins, a horizon apart unless the series is too short for that
SERIES = {
    "co2": ["data.test_origins=12"],
    "sunspots": ["data.test_origins=12"],
    "elnino": ["data.test_origins=12"],
    "nile": ["data.test_origins=12", "data.stride=2"],
    "macrodata": ["data.test_origins=12", "data.stride=4"],
    "airline": ["data.test_origins=12", "data.stride=3"],
    "lynx": ["data.test_origins=12", "data.stride=2"],
}


def mean_range(values: list[float]) -> str:
    a = np.asarray(values)
    return f"{a.mean():.3f} ({a.min():.3f}-{a.max():.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("series", nargs="*", default=list(SERIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default=",".join(RECIPES))
    parser.add_argument("--conformal", type=int, default=0, metavar="K")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    models = args.models.split(",")
    conformal = [f"data.calibration_windows={args.conformal}"] if args.conformal else []
    log.info("| series | origins | forecaster | MASE | sMAPE % | coverage90 | width90 | CRPS | s per run |")
    log.info("|---|---|---|---|---|---|---|---|---|")
    runs_dir = tempfile.mkdtemp(prefix="reproduce16-")
    for name in args.series:
        overrides = [f"data.name={name}", *SERIES[name], *conformal]
        data = load_dataset(load_recipe(RECIPES["mlp"], overrides).data)
        n = len(data.origins["test"])
        for fname in ("seasonal-naive", "ets", "arima"):
            start = time.perf_counter()
            s = evaluate_forecaster(fname, data)
            log.info("| %s | %d | %s | %.3f | %.2f | %.3f | %.3f | | %.1f |", name, n, fname, s["mase"], s["smape"],
                     s.get("coverage90", float("nan")), s.get("width90", float("nan")), time.perf_counter() - start)
        for model in models:
            keys = ("mase", "smape", "conformal_coverage", "conformal_width", "coverage", "width", "crps")
            rows: dict[str, list[float]] = {k: [] for k in keys}
            seconds = []
            for seed in range(args.seeds):
                start = time.perf_counter()
                run = deepatlas.train(RECIPES[model], [*overrides, *args.set, f"train.seed={seed}"], runs_dir=runs_dir, progress=False)
                seconds.append(time.perf_counter() - start)
                test = run.summary["eval"]["test"]
                for key in rows:
                    if key in test:
                        rows[key].append(test[key])
            band = "conformal_" if rows["conformal_coverage"] else ""  # the conformal interval, else the raw band if any
            cover = [mean_range(rows[band + k]) if rows[band + k] else "" for k in ("coverage", "width")]
            crps = mean_range(rows["crps"]) if rows["crps"] else ""
            log.info("| %s | %d | %s | %s | %s | %s | %s | %s | %.1f |", name, n, model, mean_range(rows["mase"]), mean_range(rows["smape"]),
                     *cover, crps, float(np.mean(seconds)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
