"""Where series come from: real series that ship inside statsmodels (offline), and your files.

- ``co2``: Mauna Loa atmospheric CO2 (ppm), weekly 1958-2001 (Keeling et al.), resampled to
  monthly means with the few empty months filled by time interpolation: 526 months, season 12;
- ``sunspots``: yearly mean sunspot numbers 1700-2008 (SIDC): 309 years, season 11 (the solar cycle);
- ``nile``: yearly flow of the Nile at Aswan 1871-1970 (Cobb, 1978): 100 years, no season;
- ``elnino``: monthly sea-surface temperature of the El Nino region 1950-2010: 732 months, season 12;
- ``macrodata``: US real GDP, quarterly 1959Q1-2009Q3: 203 quarters, season 4;
- ``airline``: monthly international airline passengers 1949-1960 (Box & Jenkins), from sktime: 144 months, season 12;
- ``lynx``: yearly Canadian lynx trappings 1821-1934 (Elton & Nicholson), from sktime: 114 years, season 10 (the ~10-year cycle);
- ``shampoo``: monthly shampoo sales over three years (Makridakis, Wheelwright & Hyndman), from sktime: 36 months, no season.

Your own: ``series-csv`` (``data.path=file.csv data.value=column``, optionally ``data.time``,
``data.series_id`` and ``data.covariates``), or a DataFrame of this process, ``series-frame``
(``data.frame=deepatlas.data.register_frame(df)`` and the same column options).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .series import (
    Series,
    SeriesData,
    SeriesFileOptions,
    SeriesFrameOptions,
    SeriesOptions,
    series_from_frame,
)
from .tabular import read_table


def _datasets() -> Any:
    try:
        import statsmodels.datasets as sm_datasets
    except ImportError:
        raise DataError("this series ships inside statsmodels, which is not installed: pip install 'deepatlas[stats]'.") from None
    return sm_datasets


def _one(name: str, values: Any, times: Any) -> list[Series]:
    values = np.asarray(values, dtype=np.float64)
    return [Series(name, values, np.zeros((len(values), 0)), np.asarray(times))]


def _co2() -> list[Series]:
    weekly = _datasets().co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate(method="time")
    return _one("co2", monthly.to_numpy(), monthly.index.to_numpy())


def _sunspots() -> list[Series]:
    frame = _datasets().sunspots.load_pandas().data
    return _one("sunspots", frame["SUNACTIVITY"], frame["YEAR"].astype(int))


def _nile() -> list[Series]:
    frame = _datasets().nile.load_pandas().data
    return _one("nile", frame["volume"], frame["year"].astype(int))


def _elnino() -> list[Series]:
    frame = _datasets().elnino.load_pandas().data
    months = frame.columns[1:]
    values = frame[months].to_numpy(dtype=np.float64).ravel()  # year by year, January to December
    times = [f"{int(y)}-{m + 1:02d}" for y in frame["YEAR"] for m in range(len(months))]
    return _one("elnino", values, times)


def _macrodata() -> list[Series]:
    frame = _datasets().macrodata.load_pandas().data
    times = [f"{int(y)}Q{int(q)}" for y, q in zip(frame["year"], frame["quarter"], strict=True)]
    return _one("macrodata", frame["realgdp"], times)


def _sktime(loader: str) -> list[Series]:
    try:
        import sktime.datasets as sk_datasets
    except ImportError:
        raise DataError("this series ships inside sktime, which is not installed: pip install 'deepatlas[stats]'.") from None
    y = getattr(sk_datasets, loader)()
    return _one(str(y.name or loader.removeprefix("load_")), y.to_numpy(), y.index.astype(str).to_numpy())


@dataclass(frozen=True)
class Builtin:
    reader: Callable[[], list[Series]]
    season: int
    options: SeriesOptions  # the defaults that suit the series' frequency and length
    doc: str


#: name -> the reader, season, default options and doc of a built-in series
BUILTIN: dict[str, Builtin] = {
    "co2": Builtin(_co2, 12, SeriesOptions(context=36, horizon=12, test_origins=4, val_origins=2),
                   "Mauna Loa CO2, monthly 1958-2001 (statsmodels; weekly resampled), 526 months, season 12"),
    "sunspots": Builtin(_sunspots, 11, SeriesOptions(context=33, horizon=11, test_origins=4, val_origins=2),
                        "yearly sunspot numbers 1700-2008 (statsmodels), 309 years, season 11"),
    "nile": Builtin(_nile, 1, SeriesOptions(context=20, horizon=5, test_origins=4, val_origins=2),
                    "yearly Nile flow at Aswan 1871-1970 (statsmodels), 100 years, no season"),
    "elnino": Builtin(_elnino, 12, SeriesOptions(context=36, horizon=12, test_origins=4, val_origins=2),
                      "El Nino sea-surface temperature, monthly 1950-2010 (statsmodels), 732 months, season 12"),
    "macrodata": Builtin(_macrodata, 4, SeriesOptions(context=16, horizon=8, test_origins=4, val_origins=2),
                         "US real GDP, quarterly 1959-2009 (statsmodels macrodata), 203 quarters, season 4"),
    "airline": Builtin(partial(_sktime, "load_airline"), 12, SeriesOptions(context=24, horizon=12, test_origins=3, val_origins=1),
                       "monthly airline passengers 1949-1960 (Box & Jenkins; sktime), 144 months, season 12"),
    "lynx": Builtin(partial(_sktime, "load_lynx"), 10, SeriesOptions(context=20, horizon=10, test_origins=3, val_origins=1),
                    "yearly Canadian lynx trappings 1821-1934 (sktime), 114 years, season 10"),
    "shampoo": Builtin(partial(_sktime, "load_shampoo_sales"), 1, SeriesOptions(context=6, horizon=3, test_origins=3, val_origins=1),
                       "monthly shampoo sales over 3 years (Makridakis et al.; sktime), 36 months, no season"),
}


def load_builtin_series(name: str, config: Any, state_dir: Path | None = None) -> SeriesData:
    entry = BUILTIN[name]
    return SeriesData(name, entry.reader(), config, default_season=entry.season)


def load_series_csv(config: Any, state_dir: Path | None = None) -> SeriesData:
    opts: SeriesFileOptions = config.options
    if not opts.path or not opts.value:
        raise DataError("data.path, data.value: the series-csv dataset needs a file and the column to forecast (data.path=rows.csv data.value=column).")
    path = Path(opts.path).expanduser()
    frame = read_table(path)
    series = series_from_frame(frame, opts.value, opts.time, opts.series_id, tuple(opts.covariates), where=f"series-csv:{path}")
    return SeriesData(f"series-csv:{path}", series, config)


def load_series_frame(config: Any, state_dir: Path | None = None) -> SeriesData:
    from .tabular_sources import registered_frame

    opts: SeriesFrameOptions = config.options
    if not opts.value:
        raise DataError("data.value: the series-frame dataset needs the column to forecast (data.value=column).")
    frame = registered_frame(opts.frame, "data.name=series-csv data.path=...")
    series = series_from_frame(frame, opts.value, opts.time, opts.series_id, tuple(opts.covariates), where=f"series-frame:{opts.frame}")
    return SeriesData(f"series-frame:{opts.frame}", series, config)


__all__ = ["BUILTIN", "SeriesFileOptions", "SeriesFrameOptions", "SeriesOptions", "load_builtin_series", "load_series_csv",
           "load_series_frame"]
