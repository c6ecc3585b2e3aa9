"""Where tables come from: the real datasets that ship inside statistics packages, your files, your DataFrames.

The built-in tables are read offline from the packages that carry them (the
``stats`` extra: ``pip install 'deepatlas[stats]'``; scikit-learn's are always there):

- scikit-learn: ``diabetes`` (442 patients, disease progression after a year; regression),
  ``breast-cancer`` (569 tumours, malignant or benign; classification);
- statsmodels: ``engel`` (235 Belgian working-class households, food expenditure against
  income, Engel 1857; the classic quantile-regression data), ``randhie`` (20,190 person-years
  of the RAND Health Insurance Experiment; ``mdvis``, the number of outpatient visits, a count);
- lifelines: ``gbsg2`` (686 breast-cancer patients of the German Breast Cancer Study Group 2,
  recurrence-free survival), ``rossi`` (432 released prisoners, weeks to re-arrest), ``lung``
  (228 NCCTG advanced lung-cancer patients, with missing values);
- scikit-survival: ``whas500`` (500 patients of the Worcester Heart Attack Study), ``flchain``
  (7,874 residents of Olmsted County, serum free light chain and death), ``veterans`` (137
  veterans with lung cancer, the Veterans' Administration trial), ``aids`` (1,151 patients of
  the AIDS Clinical Trials Group study 320).

Your own: ``table`` (``data.path=file.csv`` or ``.parquet``, ``data.target=column``, and for
survival ``data.event=column``), and from Python any pandas DataFrame through
:func:`register_frame` (what the scikit-learn estimators use).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional

from ..errors import DataError
from ..schema import option
from .images import show_columns
from .tabular import (
    TabularData,
    TabularFileOptions,
    TabularOptions,
    no_column,
    read_table,
    saved_preprocessor,
)


class Table(NamedTuple):
    """A built-in table: its rows and what its target is."""

    frame: Any
    target: str
    target_type: str
    event: str | None = None
    categorical: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None


def _need(package: str, module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"this dataset ships inside {package}, which is not installed: pip install 'deepatlas[stats]' "
            f"(or pip install {package})."
        ) from None


def _sklearn(name: str) -> Table:
    from sklearn import datasets

    if name == "diabetes":
        bunch = datasets.load_diabetes(as_frame=True, scaled=False)
        return Table(bunch.frame, "target", "real", categorical=("sex",))
    bunch = datasets.load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame["target"] = [str(bunch.target_names[i]) for i in bunch.target]
    return Table(frame, "target", "class", class_names=tuple(str(n) for n in bunch.target_names))


def _statsmodels(name: str) -> Table:
    sm_datasets = _need("statsmodels", "statsmodels.datasets")
    if name == "engel":
        return Table(sm_datasets.engel.load_pandas().data, "foodexp", "real")
    frame = sm_datasets.randhie.load_pandas().data
    return Table(frame, "mdvis", "real")


def _lifelines(name: str) -> Table:
    ll = _need("lifelines", "lifelines.datasets")
    if name == "gbsg2":
        return Table(ll.load_gbsg2(), "time", "survival", event="cens", categorical=("horTh", "menostat", "tgrade"))
    if name == "rossi":
        return Table(ll.load_rossi(), "week", "survival", event="arrest", categorical=())
    frame = ll.load_lung().drop(columns=["inst"])  # the institution code is an id, not a covariate
    return Table(frame, "time", "survival", event="status", categorical=("sex",))


def _sksurv(name: str) -> Table:
    ss = _need("scikit-survival", "sksurv.datasets")
    loader = {"whas500": ss.load_whas500, "flchain": ss.load_flchain, "veterans": ss.load_veterans_lung_cancer, "aids": ss.load_aids}[name]
    x, y = loader()
    event, duration = y.dtype.names
    frame = x.copy()
    frame[duration] = y[duration].astype(float)
    frame[event] = y[event].astype(float)
    return Table(frame, duration, "survival", event=event)


#: name -> (reader, doc, kind)
BUILTIN: dict[str, tuple[Callable[[str], Table], str, str]] = {
    "diabetes": (_sklearn, "scikit-learn's diabetes: 442 patients, 10 baseline variables, disease progression after one year (regression; embedded)", "tabular"),
    "breast-cancer": (_sklearn, "scikit-learn's Wisconsin breast cancer: 569 tumours, 30 features, malignant or benign (embedded)", "labelled"),
    "engel": (_statsmodels, "statsmodels' Engel food expenditure: 235 households, food spending against income (quantile regression)", "tabular"),
    "randhie": (_statsmodels, "statsmodels' RAND Health Insurance Experiment: 20,190 person-years, outpatient visits (a count)", "tabular"),
    "gbsg2": (_lifelines, "lifelines' GBSG2: 686 breast-cancer patients, recurrence-free survival, 8 covariates", "survival"),
    "rossi": (_lifelines, "lifelines' Rossi recidivism: 432 released prisoners, weeks to re-arrest, 7 covariates", "survival"),
    "lung": (_lifelines, "lifelines' NCCTG lung cancer: 228 patients, survival in days, 8 covariates with missing values", "survival"),
    "whas500": (_sksurv, "scikit-survival's Worcester Heart Attack Study: 500 patients, 14 covariates", "survival"),
    "flchain": (_sksurv, "scikit-survival's serum free light chain: 7,874 residents of Olmsted County, death", "survival"),
    "veterans": (_sksurv, "scikit-survival's Veterans' Administration lung cancer trial: 137 patients", "survival"),
    "aids": (_sksurv, "scikit-survival's ACTG 320 AIDS trial: 1,151 patients, time to AIDS or death", "survival"),
}


def load_builtin(name: str, config: Any, state_dir: Path | None = None) -> TabularData:
    reader, _, _ = BUILTIN[name]
    table = reader(name)
    return TabularData(
        name, table.frame, config, target=table.target, target_type=table.target_type, event=table.event,
        categorical=table.categorical, class_names=table.class_names, saved=saved_preprocessor(state_dir),
    )


def _target_type(frame: Any, opts: TabularFileOptions) -> str:
    import pandas as pd

    if opts.target_type != "auto":
        return opts.target_type
    if opts.event is not None:
        return "survival"
    column = frame[opts.target]
    numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
    return "real" if numeric else "class"


def _from_frame(name: str, frame: Any, config: Any, state_dir: Path | None) -> TabularData:
    opts: TabularFileOptions = config.options
    if opts.target is None:
        columns = show_columns(list(map(str, frame.columns)))
        raise DataError(f"data.target: name the target column of {name} (columns: {columns}).")
    if opts.target not in frame.columns:  # checked here too: the target's type is read before the bundle is built
        raise no_column("data.target", name, opts.target, frame)
    return TabularData(
        name, frame, config, target=opts.target, target_type=_target_type(frame, opts), event=opts.event,
        saved=saved_preprocessor(state_dir),
    )


def load_table(config: Any, state_dir: Path | None = None) -> TabularData:
    opts: TabularFileOptions = config.options
    if not opts.path:
        raise DataError("data.path: the table dataset needs a .csv, .tsv or .parquet file (data.path=rows.csv data.target=column).")
    path = Path(opts.path).expanduser()
    return _from_frame(f"table:{path}", read_table(path), config, state_dir)


# --------------------------------------------------------------------------- DataFrames from Python

_FRAMES: dict[str, Any] = {}


@dataclass(frozen=True)
class FrameOptions(TabularFileOptions):
    """A pandas DataFrame handed over in this process (see :func:`register_frame`)."""

    frame: Optional[str] = option(None, "the key register_frame returned for a DataFrame of this process")


def register_frame(frame: Any) -> str:
    """Keep a DataFrame for ``data.name=dataframe data.frame=KEY`` in this process; returns KEY (its content hash)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"register_frame: expected a pandas DataFrame, got {type(frame).__name__}.")
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(repr(list(map(str, frame.columns))).encode())
    key = "df-" + digest.hexdigest()[:16]
    _FRAMES[key] = frame.copy()
    return key


def registered_frame(key: str | None, from_file: str) -> Any:
    """The DataFrame ``register_frame`` kept under ``key``; a clear error otherwise (``from_file``: the file alternative)."""
    if key not in _FRAMES:
        raise DataError(
            f"data.frame: {key!r} is not a DataFrame of this process (register one with "
            f"deepatlas.data.register_frame(df); to train from a file, use {from_file})."
        )
    return _FRAMES[key]


def load_frame(config: Any, state_dir: Path | None = None) -> TabularData:
    opts: FrameOptions = config.options
    return _from_frame(f"dataframe:{opts.frame}", registered_frame(opts.frame, "data.name=table data.path=..."), config, state_dir)


__all__ = ["BUILTIN", "FrameOptions", "TabularOptions", "load_builtin", "load_frame", "load_table", "register_frame"]
