"""Issue 16 reproductions: classical forecasters on the rolling test origins of the built-in series.

    DEEPATLAS_DATA_DIR=/work/shared/data PYTHONPATH=src python scripts/reproduce_16_forecast_baselines.py [ORIGINS] [SERIES...]

ORIGINS is data.test_origins (default: each dataset's own, 4). Each forecaster is refit at every
origin on the values before it. Logs a markdown table (MASE, sMAPE %, 90% coverage, seconds).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time

from deepatlas.config import DataConfig
from deepatlas.data.series import SeriesData
from deepatlas.data.series_sources import BUILTIN
from deepatlas.forecast_baselines import FORECASTERS, evaluate_forecaster

log = logging.getLogger("reproduce_16")


def main(argv: list[str]) -> None:
    origins = int(argv[0]) if argv and argv[0].isdigit() else None
    names = [a for a in argv if not a.isdigit()] or list(BUILTIN)
    log.info("| series | h | m | origins | forecaster | MASE | sMAPE % | coverage90 | s |")
    log.info("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        entry = BUILTIN[name]
        opts = entry.options if origins is None else dataclasses.replace(entry.options, test_origins=origins)
        data = SeriesData(name, entry.reader(), DataConfig(name=name, options=opts), default_season=entry.season)
        h, m, n = data.options.horizon, data.season, len(data.origins["test"])
        for fname in FORECASTERS:
            start = time.perf_counter()
            s = evaluate_forecaster(fname, data)
            log.info("| %s | %d | %d | %d | %s | %.3f | %.2f | %.3f | %.1f |", name, h, m, n, fname, s["mase"], s["smape"],
                     s.get("coverage90", float("nan")), time.perf_counter() - start)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(sys.argv[1:])
