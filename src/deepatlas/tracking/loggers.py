"""Loggers to the tools people already use: TensorBoard, MLflow and a CSV file (``train.loggers``).

Each is a :class:`~deepatlas.engine.callbacks.Callback` next to the run store (which stays the
record): training logs every ``train.log_every`` steps as ``log/loss``, ``log/lr``, ... at their step,
the end-of-epoch metrics (``train/...``, ``val/...``) at the epoch's last step, the config as hyperparameters, and, once the run
has ended (:meth:`finish`, after the test evaluation), the final metrics and the run's figures.

- ``tensorboard``: event files in ``<run>/tensorboard`` (``tensorboard --logdir runs``), written by
  ``torch.utils.tensorboard.SummaryWriter``; scalars, the config as text and as hparams with the
  final metrics, the figures as images. Needs the ``tensorboard`` package.
- ``mlflow``: a run in an MLflow tracking store (``train.mlflow_uri``; default ``$MLFLOW_TRACKING_URI``,
  else ``sqlite:///<runs dir>/mlflow.db``), in the experiment named after the recipe: params (the
  flattened config), metrics with their steps, the figures and ``config.yaml`` as artifacts, the
  run's id as a tag. A resumed deepatlas run continues its MLflow run (its id is in the checkpoint).
  Needs the ``mlflow`` package.
- ``csv``: ``<run>/metrics.csv``, every logged row (kind, step, epoch, then each metric a column),
  written atomically when the run ends.

:func:`export_to_mlflow` sends finished runs of the run store to an MLflow server after the fact
(``deepatlas runs export --mlflow URI``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.callbacks import Callback
from ..errors import ConfigError
from ..io import write_text
from .compare import flatten

if TYPE_CHECKING:
    from ..engine.trainer import FitResult, Trainer
    from .store import Run

LOGGERS = ("tensorboard", "mlflow", "csv")


def final_metrics(run: Run) -> dict[str, float]:
    """The best validation metrics and each evaluated split's, as ``<split>/<metric>`` numbers."""
    summary = run.summary
    out: dict[str, float] = {}
    for split, metrics in (summary.get("eval") or {}).items():
        out.update({f"{split}/{k}": float(v) for k, v in metrics.items() if _number(v)})
    best = (summary.get("best") or {}).get("metrics") or {}
    out.update({f"best/{k}": float(v) for k, v in best.items() if _number(v)})
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def _figures(run: Run) -> list[Path]:
    return sorted(run.path.glob("*.png"))


class ExternalLogger(Callback):
    """A logger: the training events, then :meth:`finish` once the run has ended and been evaluated."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        """Send numbers at ``step`` (the default sends nothing: the CSV logger writes once, at the end)."""

    def on_log(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.scalars({f"log/{k}": v for k, v in logs.items()}, trainer.state.step)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.scalars({k: v for k, v in metrics.items() if "/" in k}, int(metrics.get("step", trainer.state.step)))
        self.scalars({"epoch": metrics.get("epoch", trainer.state.epoch)}, int(metrics.get("step", trainer.state.step)))

    def finish(self, run: Run) -> None:
        """After the run ended (and its test evaluation): final metrics, figures; close."""


class TensorBoardLogger(ExternalLogger):
    name = "tensorboard"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("train.loggers: tensorboard needs the tensorboard package (pip install tensorboard).") from None
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def _open(self) -> Any:
        if self.writer is None:
            self.writer = self._writer_class(log_dir=str(self.run.path / "tensorboard"))
        return self.writer

    def on_fit_start(self, trainer: Trainer) -> None:
        config = (self.run.path / "config.yaml").read_text(encoding="utf-8") if (self.run.path / "config.yaml").is_file() else ""
        self._open().add_text("config", "```\n" + config + "\n```", global_step=trainer.state.step)

    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        writer = self._open()
        for key, value in values.items():
            if _number(value):
                writer.add_scalar(key, float(value), step)
        writer.flush()

    def finish(self, run: Run) -> None:
        import numpy as np
        from PIL import Image

        writer = self._open()
        params = {k: v for k, v in flatten(run.config.to_dict()).items() if isinstance(v, (int, float, str, bool))}
        metrics = final_metrics(run)
        if metrics:
            writer.add_hparams(params, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")
        step = int((run.summary.get("progress") or {}).get("step") or 0)
        for path in _figures(run):
            with Image.open(path) as image:
                writer.add_image(f"figures/{path.stem}", np.asarray(image.convert("RGB")), step, dataformats="HWC")
        writer.flush()
        writer.close()
        self.writer = None


def mlflow_uri(configured: str | None, runs_dir: Path) -> str:
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def _mlflow_client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("train.loggers: mlflow needs the mlflow package (pip install mlflow).") from None
    return MlflowClient(tracking_uri=uri)


def _experiment(client: Any, name: str) -> str:
    """The experiment's id, created if new. With a SQLite store its artifacts go next to the database file (MLflow's
    default would be ./mlruns in whatever folder the process runs in)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    uri = str(client.tracking_uri)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def _params(config: Mapping[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(list(v) if isinstance(v, tuple) else v)[:6000]) for k, v in sorted(flatten(config).items())]


def _log_batch(client: Any, run_id: str, values: Mapping[str, Any], step: int, timestamp_ms: int | None = None) -> None:
    import time

    from mlflow.entities import Metric

    stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    metrics = [Metric(_mlflow_key(k), float(v), stamp, step) for k, v in values.items() if _number(v)]
    for lo in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[lo:lo + 1000])


def _mlflow_key(key: str) -> str:
    """MLflow keys allow letters, digits, _ - . space : / ; anything else becomes _."""
    return "".join(c if c.isalnum() or c in "_-. :/" else "_" for c in key)


def _finish_mlflow(client: Any, run_id: str, run: Run) -> None:
    step = int((run.summary.get("progress") or {}).get("step") or 0)
    _log_batch(client, run_id, final_metrics(run), step)
    for path in [*_figures(run), run.path / "config.yaml"]:
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path="figures" if path.suffix == ".png" else None)
    status = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}.get(str(run.summary.get("status")), "FINISHED")
    client.set_terminated(run_id, status=status)


class MLflowLogger(ExternalLogger):
    name = "mlflow"

    def __init__(self, run: Run, uri: str) -> None:
        super().__init__(run)
        self.uri = uri
        self.client = _mlflow_client(uri)
        self.run_id: str | None = None

    def state_dict(self) -> dict[str, Any] | None:
        return {"run_id": self.run_id} if self.run_id else None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.run_id is None:
            experiment = _experiment(self.client, str(self.run.config.recipe or "deepatlas"))
            created = self.client.create_run(experiment, run_name=self.run.id, tags={"deepatlas.run": self.run.id})
            self.run_id = created.info.run_id
            self.client.log_batch(self.run_id, params=_params(self.run.config.to_dict()))
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        if self.run_id is not None:
            _log_batch(self.client, self.run_id, values, step)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        if self.run_id is not None and result.status != "completed":
            self.client.set_terminated(self.run_id, status="KILLED" if result.status == "interrupted" else "FAILED")

    def finish(self, run: Run) -> None:
        if self.run_id is not None:
            _finish_mlflow(self.client, self.run_id, run)


class CSVLogger(ExternalLogger):
    """``metrics.csv``: the run's logged rows, one column per metric (written when the run ends)."""

    name = "csv"

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        write_metrics_csv(self.run.metrics(), self.run.path / "metrics.csv")


def write_metrics_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    fixed = ["kind", "step", "epoch", "time"]
    columns = fixed + sorted({k for row in rows for k in row} - set(fixed))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
    return path


def build_loggers(names: Iterable[str], run: Run, mlflow_tracking_uri: str | None, runs_dir: Path) -> list[ExternalLogger]:
    out: list[ExternalLogger] = []
    for name in names:
        if name == "tensorboard":
            out.append(TensorBoardLogger(run))
        elif name == "mlflow":
            out.append(MLflowLogger(run, mlflow_uri(mlflow_tracking_uri, runs_dir)))
        elif name == "csv":
            out.append(CSVLogger(run))
        else:  # the config's Literal already refuses other names; a clear error for direct callers
            raise ConfigError(f"train.loggers: unknown logger {name!r} (allowed: {', '.join(LOGGERS)}).")
    return out


def export_to_mlflow(runs: Iterable[Run], uri: str) -> list[tuple[str, str]]:
    """Send finished runs (config as params, every logged metric at its step and time, final metrics, figures)
    to the MLflow tracking store at ``uri``; (deepatlas run id, MLflow run id) per run."""
    client = _mlflow_client(uri)
    sent = []
    for run in runs:
        experiment = _experiment(client, str(run.config.recipe or "deepatlas"))
        created = client.create_run(experiment, run_name=run.id, tags={"deepatlas.run": run.id})
        run_id = created.info.run_id
        client.log_batch(run_id, params=_params(run.config.to_dict()))
        for row in run.metrics():
            values = {(f"log/{k}" if row.get("kind") == "log" else k): v for k, v in row.items()
                      if k not in ("kind", "step", "time")}
            stamp = int(float(row["time"]) * 1000) if _number(row.get("time")) else None
            _log_batch(client, run_id, values, int(row.get("step", 0)), stamp)
        _finish_mlflow(client, run_id, run)
        sent.append((run.id, run_id))
    return sent


__all__ = ["LOGGERS", "CSVLogger", "ExternalLogger", "MLflowLogger", "TensorBoardLogger", "build_loggers", "export_to_mlflow",
           "mlflow_uri", "write_metrics_csv"]
