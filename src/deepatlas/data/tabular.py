"""Tabular data: columns of numbers and categories, a target, and the preprocessing fitted on training rows only.

A table (a CSV or Parquet file, or a pandas DataFrame passed from Python) becomes a
:class:`TabularData` bundle. Column types are declared (``data.numeric``,
``data.categorical``) or inferred (numbers are numeric; strings, booleans and pandas
categories are categorical). The fitted preprocessing (:class:`TabularPreprocessor`) is
learnt from the training split alone, never from validation or test rows:

- numeric columns are standardised with the training mean and standard deviation; a
  missing value becomes the training mean (0 after standardisation), and every numeric
  column with missing training values gets a 0/1 missing-value indicator;
- categorical columns become integer codes for an embedding: 0 is the slot of a category
  never seen in training (and of a missing value, unless missing values were seen in
  training, where they are a category of their own), 1.. the training categories.

The target is a class label (``labelled``: classification), a real or count value
(``tabular``: regression, distributional and quantile tasks) or a survival outcome, a
duration and an event indicator (``survival``). The splits are seeded: a test fraction (or
one fold of ``data.folds``-fold cross-validation), then a validation fraction of the rest,
and optionally a calibration fraction that no training step sees (conformal intervals).

A batch is ``(TabularBatch, target)``; ``TabularBatch`` holds the standardised numbers
(B, P) and the category codes (B, C).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import numpy as np
import torch

from ..errors import DataError
from ..schema import option
from .bundle import ShuffledBatches
from .images import show_columns
from .preprocess import KINDS

#: what a table's target is, and the data kind (``Task.data_kind``) each serves
TARGET_KINDS = {"class": "labelled", "real": "tabular", "survival": "survival"}


class TabularBatch:
    """Model inputs of a batch of rows: standardised numbers (B, P) float and category codes (B, C) long."""

    __slots__ = ("categorical", "numeric")

    def __init__(self, numeric: torch.Tensor, categorical: torch.Tensor) -> None:
        self.numeric, self.categorical = numeric, categorical

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    def __getitem__(self, index: Any) -> TabularBatch:
        return TabularBatch(self.numeric[index], self.categorical[index])

    def to(self, device: torch.device | str) -> TabularBatch:
        return TabularBatch(self.numeric.to(device), self.categorical.to(device))

    def __repr__(self) -> str:
        return f"TabularBatch(numeric={tuple(self.numeric.shape)}, categorical={tuple(self.categorical.shape)})"

    @staticmethod
    def cat(batches: Sequence[TabularBatch]) -> TabularBatch:
        return TabularBatch(torch.cat([b.numeric for b in batches]), torch.cat([b.categorical for b in batches]))


def _register_pytree() -> None:
    """Let torch's tree utilities (moving a batch to the meta device to count FLOPs) see inside a TabularBatch."""
    from torch.utils import _pytree

    _pytree.register_pytree_node(
        TabularBatch, lambda b: ([b.numeric, b.categorical], None), lambda children, _: TabularBatch(*children),
        serialized_type_name="deepatlas.TabularBatch",
    )


_register_pytree()


@dataclass(frozen=True)
class TabularOptions:
    """Options of every table (built-in or your own)."""

    numeric: Optional[tuple[str, ...]] = option(None, "numeric feature columns (null: inferred from the values)")
    categorical: Optional[tuple[str, ...]] = option(
        None, "categorical feature columns, embedded (null: inferred: strings, booleans, pandas categories)"
    )
    drop: tuple[str, ...] = option((), "columns that are not features (ids, leakage)")
    test_fraction: float = option(0.2, "fraction of rows held out as the test split (seeded by data.split_seed)", low=0.0, high=0.9)
    folds: Optional[int] = option(None, "k-fold cross-validation: the test split is fold data.fold of this many (null: test_fraction)", low=2)
    fold: int = option(0, "which fold is the test split when data.folds is set (0-based)", low=0)
    calibration_fraction: float = option(
        0.0, "fraction of the non-test rows held out for calibration (conformal intervals), never trained on", low=0.0, high=0.9,
    )


@dataclass(frozen=True)
class TabularFileOptions(TabularOptions):
    """Your own table: a CSV or Parquet file."""

    path: Optional[str] = option(None, "a .csv, .tsv or .parquet file with a header row")
    target: Optional[str] = option(None, "the target column (survival: the duration column)")
    event: Optional[str] = option(None, "survival: the event column (1/true: event observed, 0/false: censored)")
    target_type: Literal["auto", "class", "real", "survival"] = option(
        "auto", "auto: survival when data.event is set, class for text/boolean targets, else real"
    )


# --------------------------------------------------------------------------- the fitted preprocessing


@dataclass(frozen=True)
class TabularPreprocessor:
    """Raw rows -> :class:`TabularBatch`, with the statistics of the training split.

    Accepts a pandas DataFrame, a mapping of column -> values, a list of row mappings, or a
    2-D array whose columns are ``columns`` in order. Columns it does not use are ignored;
    a missing feature column is an error naming it.
    """

    numeric: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    indicators: tuple[str, ...]  # numeric columns with a missing-value indicator
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]  # training categories of each categorical column (code = index + 1)
    kind: ClassVar[str] = "tabular"
    tokenizer: ClassVar[None] = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding rows per categorical column: its training categories and the unknown slot."""
        return tuple(len(c) + 1 for c in self.categories)

    @property
    def num_numeric(self) -> int:
        return len(self.numeric) + len(self.indicators)

    def __call__(self, raw: Any) -> TabularBatch:
        frame = as_frame(raw, self.columns)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(f"rows: no column {missing[0]!r} (the model needs: {', '.join(self.columns)}).")
        n = len(frame)
        numeric = np.zeros((n, self.num_numeric), dtype=np.float32)
        for j, name in enumerate(self.numeric):
            values = numeric_values(frame[name], name)
            gone = np.isnan(values)
            numeric[:, j] = np.where(gone, 0.0, (values - self.mean[j]) / self.std[j])
            if name in self.indicators:
                numeric[:, len(self.numeric) + self.indicators.index(name)] = gone
        codes = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, name in enumerate(self.categorical):
            lookup = {c: i + 1 for i, c in enumerate(self.categories[j])}
            codes[:, j] = [lookup.get(v, 0) for v in category_values(frame[name])]
        return TabularBatch(torch.from_numpy(numeric), torch.from_numpy(codes))

    def feature_names(self) -> list[str]:
        """The model's input columns: numeric, their missing-value indicators, categorical."""
        return [*self.numeric, *(f"{c} (missing)" for c in self.indicators), *self.categorical]

    def to_json(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric), "mean": list(self.mean), "std": list(self.std),
            "indicators": list(self.indicators), "categorical": list(self.categorical),
            "categories": [list(c) for c in self.categories],
        }

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> TabularPreprocessor:
        return cls(
            tuple(spec["numeric"]), tuple(float(v) for v in spec["mean"]), tuple(float(v) for v in spec["std"]),
            tuple(spec["indicators"]), tuple(spec["categorical"]), tuple(tuple(c) for c in spec["categories"]),
        )

    @classmethod
    def fit(cls, frame: Any, numeric: Sequence[str], categorical: Sequence[str]) -> TabularPreprocessor:
        """Statistics of the training rows ``frame``."""
        means, stds, indicators = [], [], []
        for name in numeric:
            values = numeric_values(frame[name], name)
            seen = values[~np.isnan(values)]
            if len(seen) == 0:
                raise DataError(f"column {name!r}: no value in the training rows (drop it with data.drop).")
            with np.errstate(over="ignore"):
                mean, std = float(seen.mean()), float(seen.std())
            if not (np.isfinite(mean) and np.isfinite(std)):
                raise DataError(f"column {name!r}: values too large to standardise (|x| up to {np.abs(seen).max():.3g}); rescale the column.")
            means.append(mean)
            stds.append(std if std > 1e-12 else 1.0)  # a constant column: centred, not divided by zero
            if len(seen) < len(values):
                indicators.append(name)
        categories = []
        for name in categorical:
            values = category_values(frame[name])
            categories.append(tuple(sorted(set(values), key=_category_order)))
        return cls(tuple(numeric), tuple(means), tuple(stds), tuple(indicators), tuple(categorical), tuple(categories))


KINDS[TabularPreprocessor.kind] = TabularPreprocessor

MISSING = "<missing>"


def _category_order(value: str) -> tuple[int, str]:
    return (value == MISSING, value)


def category_values(column: Any) -> list[str]:
    """A column's values as category names: strings, with missing values as ``<missing>``."""
    import pandas as pd

    out = []
    for v in column.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            out.append(MISSING)
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))  # 1.0 and 1 are one category (pandas turns ints with gaps into floats)
        else:
            out.append(str(v))
    return out


def numeric_values(column: Any, name: str) -> np.ndarray:
    """A column as float64 with NaN for missing values; text in a numeric column is an error naming it."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise DataError(f"column {name!r}, row {row + 1}: an infinite value; replace it or leave it empty (missing).")
    bad = np.isnan(values) & ~column.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"column {name!r}, row {row + 1}: {column.iloc[row]!r} is not a number "
            "(declare the column in data.categorical, or fix the value)."
        )
    return values


def as_frame(raw: Any, columns: Sequence[str] = ()) -> Any:
    """A pandas DataFrame from a DataFrame, a mapping of columns, a list of row mappings or a 2-D array."""
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        return raw.reset_index(drop=True)
    if isinstance(raw, pd.Series):
        return raw.to_frame().T.reset_index(drop=True)
    if isinstance(raw, Mapping):
        return pd.DataFrame({k: np.atleast_1d(np.asarray(v, dtype=object)) for k, v in raw.items()})
    if isinstance(raw, Sequence) and raw and all(isinstance(r, Mapping) for r in raw):
        return pd.DataFrame(list(raw))
    array = np.asarray(raw, dtype=object)
    if array.ndim == 1 and len(columns) and array.shape[0] == len(columns):
        array = array[None]
    if array.ndim != 2 or (columns and array.shape[1] != len(columns)):
        raise DataError(
            f"rows: expected a DataFrame, a mapping of columns, a list of row mappings, or an array of shape "
            f"(N, {len(columns)}) with columns {', '.join(columns)}; got shape {array.shape}."
        )
    return pd.DataFrame(array, columns=list(columns) if columns else None)


# --------------------------------------------------------------------------- reading a table


def read_table(path: Path) -> Any:
    """A CSV/TSV or Parquet file as a DataFrame; an unreadable file is a one-line error naming it."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data.path: {path} does not exist (a .csv, .tsv or .parquet file).")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                frame = pd.read_parquet(path)
            except ImportError:
                raise DataError(f"{path}: reading Parquet needs pyarrow (pip install 'deepatlas[stats]').") from None
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8")
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read as a {'Parquet' if suffix in ('.parquet', '.pq') else 'UTF-8 CSV'} table ({' '.join(str(exc).split())[:200]}).") from None
    except Exception as exc:  # pyarrow's own errors (a corrupt Parquet footer) are not OSError subclasses
        raise DataError(f"{path}: cannot read the table ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}).") from None
    if frame.empty:
        raise DataError(f"{path}: no rows.")
    frame.columns = [" ".join(str(c).split()) for c in frame.columns]  # line breaks in a name would break one-line errors
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise DataError(f"{path}: the column {duplicated[0]!r} appears twice in the header.")
    return frame


def no_column(key: str, where: str, column: str, frame: Any) -> DataError:
    """The one-line error for a column ``key`` names that ``frame`` lacks, with its columns and a suggestion."""
    from ..errors import suggest

    columns = list(map(str, frame.columns))
    return DataError(f"{key}: {where} has no column {column!r} (columns: {show_columns(columns)})." + suggest(column, columns))


def infer_columns(frame: Any, exclude: Sequence[str], numeric: Sequence[str] | None, categorical: Sequence[str] | None,
                  where: str) -> tuple[list[str], list[str]]:
    """The numeric and categorical feature columns: declared ones checked, the others inferred from dtypes."""
    import pandas as pd

    names = [c for c in frame.columns if c not in exclude]
    for declared, key in ((numeric, "data.numeric"), (categorical, "data.categorical")):
        for c in declared or ():
            if c not in frame.columns:
                raise no_column(key, where, c, frame)
    if numeric is not None and categorical is not None:
        return list(numeric), list(categorical)
    fixed_num, fixed_cat = set(numeric or ()), set(categorical or ())
    num, cat = [], []
    for c in names:
        if c in fixed_num or (numeric is None and c not in fixed_cat and _is_numeric(frame[c], pd)):
            num.append(c)
        elif categorical is None or c in fixed_cat:
            cat.append(c)
    return num, cat


def _is_numeric(column: Any, pd: Any) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column.dtype)) and not pd.api.types.is_bool_dtype(column.dtype)


# --------------------------------------------------------------------------- the bundle


class TabularSplit:
    """Rows of one split: model inputs and targets, with a content fingerprint."""

    def __init__(self, inputs: TabularBatch, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            for t in (self.inputs.numeric, self.inputs.categorical, self.targets):
                h.update(repr((tuple(t.shape), str(t.dtype))).encode())
                h.update(t.contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class TabularData(ShuffledBatches):
    """Seeded train / validation / (calibration) / test splits of a table, with preprocessing fitted on training rows."""

    def __init__(
        self, name: str, frame: Any, config: Any, *, target: str, target_type: str, event: str | None = None,
        numeric: Sequence[str] | None = None, categorical: Sequence[str] | None = None, drop: Sequence[str] = (),
        class_names: Sequence[str] | None = None, saved: TabularPreprocessor | None = None,
    ) -> None:
        opts: TabularOptions = config.options
        self.name, self.config = name, config
        where = name
        for column, key in ((target, "data.target"), (event, "data.event")):
            if column is not None and column not in frame.columns:
                raise no_column(key, where, column, frame)
        exclude = [target, *([event] if event else []), *drop, *(opts.drop or ())]
        num, cat = infer_columns(frame, exclude, opts.numeric if opts.numeric is not None else numeric,
                                 opts.categorical if opts.categorical is not None else categorical, where)
        if not num and not cat:
            raise DataError(f"{where}: no feature columns left (besides the target {target!r} and data.drop).")
        frame = frame.reset_index(drop=True)
        y, meta_target = self._targets(frame, target, target_type, event, class_names, where)
        test, val, calibration, train = self._split(y, target_type, len(frame), opts, config)
        self.preprocessing = saved or TabularPreprocessor.fit(frame.iloc[train], num, cat)
        self.splits: dict[str, TabularSplit] = {}
        for split, rows in (("train", train), ("val", val), ("calibration", calibration), ("test", test)):
            if split == "calibration" and not len(rows):
                continue
            self.splits[split] = TabularSplit(self.preprocessing(frame.iloc[rows]), y[torch.as_tensor(rows, dtype=torch.long)])
        if len(self.splits["train"]) == 0:
            raise DataError(f"{where}: the training split is empty (check data.test_fraction, data.val_fraction, data.limit).")
        p = self.preprocessing
        train_y = self.splits["train"].targets
        self.meta: dict[str, Any] = {
            "target_type": target_type,
            "target": target,
            "event": event,
            "num_numeric": p.num_numeric,
            "cardinalities": list(p.cardinalities),
            "features": p.feature_names(),
            "sizes": {k: len(v) for k, v in self.splits.items()},
            **meta_target,
            **self._target_stats(train_y, target_type),
        }
        if target_type == "class":  # class-weighted losses (task.class_weights) need the training counts
            self.meta["class_counts"] = torch.bincount(train_y, minlength=int(meta_target["num_classes"])).tolist()

    # ----------------------------------------------------------------- targets and splits

    @staticmethod
    def _targets(frame: Any, target: str, target_type: str, event: str | None, class_names: Sequence[str] | None,
                 where: str) -> tuple[torch.Tensor, dict[str, Any]]:
        column = frame[target]
        if column.isna().any():
            row = int(np.flatnonzero(column.isna().to_numpy())[0])
            raise DataError(f"{where}, column {target!r}, row {row + 1}: the target is missing (every row needs one; drop the row).")
        if target_type == "class":
            values = category_values(column)
            names = list(class_names) if class_names is not None else sorted(set(values), key=_natural)
            lookup = {n: i for i, n in enumerate(names)}
            unknown = sorted(set(values) - set(lookup))
            if unknown:
                raise DataError(f"{where}, column {target!r}: label {unknown[0]!r} is not one of the classes {names}.")
            return torch.tensor([lookup[v] for v in values], dtype=torch.long), {"num_classes": len(names), "class_names": names}
        y = numeric_values(column, target)
        if target_type == "real":
            return torch.from_numpy(y.astype(np.float32)), {}
        if event is None:
            raise DataError(f"{where}: a survival target needs data.event, the column that says whether the event was observed.")
        if (y < 0).any():
            row = int(np.flatnonzero(y < 0)[0])
            raise DataError(f"{where}, column {target!r}, row {row + 1}: a negative duration ({y[row]}).")
        events = frame[event]
        e = np.array([_event_flag(v) for v in events.tolist()], dtype=np.float64)
        if np.isnan(e).any():
            row = int(np.flatnonzero(np.isnan(e))[0])
            raise DataError(f"{where}, column {event!r}, row {row + 1}: {events.iloc[row]!r} is not an event flag (1/0, true/false).")
        if e.sum() == 0:
            raise DataError(f"{where}, column {event!r}: no event is observed (every row is censored); a survival model needs events.")
        return torch.from_numpy(np.stack([y, e], axis=1).astype(np.float32)), {}

    @staticmethod
    def _target_stats(y: torch.Tensor, target_type: str) -> dict[str, Any]:
        """What a task needs of the training targets: the scale of a real target, the event times of a survival one."""
        if target_type == "real":
            v = y.double()
            return {"target_mean": float(v.mean()), "target_std": float(v.std(unbiased=False).clamp_min(1e-12)),
                    "target_min": float(v.min()), "target_max": float(v.max()),
                    "target_integer": bool((v == v.round()).all())}
        if target_type == "survival":
            t, e = y[:, 0].double(), y[:, 1] > 0
            times = t[e] if e.any() else t
            grid = torch.quantile(times, torch.linspace(0, 1, 101, dtype=torch.float64)).tolist()
            return {"duration_max": float(t.max()), "event_time_quantiles": [round(v, 6) for v in grid],
                    "event_rate": float(e.double().mean())}
        return {}

    @staticmethod
    def _split(y: torch.Tensor, target_type: str, n: int, opts: TabularOptions, config: Any) -> tuple[np.ndarray, ...]:
        """Row indices (test, val, calibration, train), seeded by ``data.split_seed``, stratified by class or event."""
        from .images import stratified_split

        strata = y.numpy().astype(np.int64) if target_type == "class" else (
            y[:, 1].numpy().astype(np.int64) if target_type == "survival" else np.zeros(n, dtype=np.int64))
        index = np.arange(n)
        if opts.folds is not None:
            if opts.fold >= opts.folds:
                raise DataError(f"data.fold: {opts.fold} is not a fold of data.folds={opts.folds} (allowed: 0..{opts.folds - 1}).")
            test = _fold(strata, opts.folds, opts.fold, config.split_seed)
        else:
            _, test = stratified_split(strata, opts.test_fraction, config.split_seed, where="the table")
        rest = np.setdiff1d(index, test)
        keep, val = stratified_split(strata[rest], config.val_fraction, config.split_seed + 1, where="the table")
        rest, val = rest[keep], rest[val]
        keep, calibration = stratified_split(strata[rest], opts.calibration_fraction, config.split_seed + 2, where="the table")
        rest, calibration = rest[keep], rest[calibration]
        if config.limit is not None:
            rest = rest[: config.limit]
        return np.sort(test), np.sort(val), np.sort(calibration), rest

    # ----------------------------------------------------------------- the bundle contract

    def split(self, name: str) -> TabularSplit:
        if name not in self.splits:
            raise DataError(f"{self.name}: no split {name!r} ({', '.join(self.splits)}).")
        return self.splits[name]

    def preprocessor(self) -> TabularPreprocessor:
        return self.preprocessing

    def train_batches(self, epoch: int, seed: int, device: torch.device, start: int = 0) -> Iterator[tuple[TabularBatch, torch.Tensor]]:
        data = self.splits["train"]
        for idx in self.epoch_index(epoch, seed, start):
            yield data.inputs[idx].to(device), data.targets[idx].to(device)

    def eval_batches(self, split: str, device: torch.device) -> Iterator[tuple[TabularBatch, torch.Tensor]]:
        data = self.split(split)
        for lo in range(0, len(data), self.config.eval_batch_size):
            hi = lo + self.config.eval_batch_size
            yield data.inputs[lo:hi].to(device), data.targets[lo:hi].to(device)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(features, targets) of a split as numpy arrays (numeric, indicators, then category codes): for baselines."""
        data = self.split(split)
        x = torch.cat([data.inputs.numeric, data.inputs.categorical.float()], dim=1)
        return x.numpy(), data.targets.numpy()


FLAGS = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "1.0": 1.0, "0.0": 0.0}


def _event_flag(value: Any) -> float:
    """1.0 (event), 0.0 (censored) or NaN (not a flag) for 1/0, true/false, yes/no."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    return FLAGS.get(str(value).strip().lower(), float("nan"))


def _fold(strata: np.ndarray, folds: int, fold: int, seed: int) -> np.ndarray:
    """Rows of fold ``fold`` of a seeded, stratified k-fold partition."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds > len(strata):
        raise DataError(f"data.folds: {folds} folds of {len(strata)} rows leave a fold empty (use at most {len(strata)} folds).")
    counts = np.bincount(strata)
    splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=seed) if counts[counts > 0].min() >= folds else KFold(folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(strata)), strata)):
        if k == fold:
            return test
    raise AssertionError("unreachable")


def _natural(name: str) -> tuple[int, float | str]:
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)


def saved_preprocessor(state_dir: Path | None) -> TabularPreprocessor | None:
    """The preprocessing a run saved (reused on resume and evaluation: the same codes and statistics)."""
    if state_dir is None or not (Path(state_dir) / "preprocess.json").is_file():
        return None
    spec = json.loads((Path(state_dir) / "preprocess.json").read_text(encoding="utf-8"))
    return TabularPreprocessor.from_json(spec) if spec.get("kind") == "tabular" else None
