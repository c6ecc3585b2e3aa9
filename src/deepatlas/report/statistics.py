"""Pictures of the statistics family: predicted against observed with intervals, and survival curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .plots import _figure, _save


def plot_intervals(
    y: np.ndarray, prediction: np.ndarray, path: str | Path, lower: np.ndarray | None = None,
    upper: np.ndarray | None = None, title: str = "", label: str = "interval",
) -> Path:
    """Observed against predicted (left) and each row's interval sorted by prediction (right), with coverage."""
    y, prediction = np.asarray(y, dtype=float).reshape(-1), np.asarray(prediction, dtype=float).reshape(-1)
    fig, (left, right) = _figure(1, 2, figsize=(11, 4.2))
    lo, hi = float(min(y.min(), prediction.min())), float(max(y.max(), prediction.max()))
    left.scatter(prediction, y, s=10, alpha=0.6)
    left.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    left.set_xlabel("predicted")
    left.set_ylabel("observed")
    left.grid(alpha=0.3)
    order = np.argsort(prediction)
    rows = np.arange(len(y))
    right.plot(rows, prediction[order], color="C0", lw=1.2, label="prediction")
    subtitle = ""
    if lower is not None and upper is not None:
        lower, upper = np.asarray(lower, dtype=float).reshape(-1), np.asarray(upper, dtype=float).reshape(-1)
        right.fill_between(rows, lower[order], upper[order], color="C0", alpha=0.25, label=label)
        inside = (y >= lower) & (y <= upper)
        right.scatter(rows[inside[order]], y[order][inside[order]], s=8, color="C2", label="observed, inside")
        right.scatter(rows[~inside[order]], y[order][~inside[order]], s=10, color="C3", label="observed, outside")
        subtitle = f" (coverage {inside.mean():.3f}, mean width {(upper - lower).mean():.3g})"
    else:
        right.scatter(rows, y[order], s=8, color="C2", label="observed")
    right.set_xlabel("rows, sorted by prediction")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title + subtitle)
    return _save(fig, path)


def plot_survival(
    times: np.ndarray, curves: np.ndarray, path: str | Path, observed: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    labels: Sequence[str] | None = None, title: str = "",
) -> Path:
    """Predicted survival curves S(t) (one per row or group) and, dashed in the same colour, the
    Kaplan-Meier estimate ``observed[i] = (times, S)`` of each group."""
    times, curves = np.asarray(times, dtype=float), np.atleast_2d(np.asarray(curves, dtype=float))
    fig, ax = _figure(figsize=(7, 4.5))
    for i, curve in enumerate(curves):
        name = labels[i] if labels else None
        ax.step(times, curve, where="post", lw=1.6, color=f"C{i}", label=f"{name}: predicted" if name else None)
        if observed is not None and i < len(observed):
            km_times, km = observed[i]
            ax.step(np.r_[0.0, km_times], np.r_[1.0, km], where="post", lw=1.1, ls="--", color=f"C{i}",
                    label=f"{name}: Kaplan-Meier" if name else None)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time")
    ax.set_ylabel("S(t)")
    ax.grid(alpha=0.3)
    if labels:
        ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def survival_figures(task: Any, model: Any, batch: Any, folder: Path, split: str) -> list[Path]:
    """Mean predicted survival of the rows in each third of predicted risk, against each third's Kaplan-Meier."""
    from ..metrics.survival import kaplan_meier

    if batch is None:
        return []
    inputs, y = batch
    time, event = y[:, 0].detach().cpu().double().numpy(), y[:, 1].detach().cpu().numpy() > 0
    if len(time) < 6:
        return []
    risk = task.predict(model, inputs)["prediction"].detach().cpu().double().numpy()
    grid = np.linspace(0.0, float(time.max()), 200)
    import torch

    curves = task.predict_survival(model, inputs, torch.as_tensor(grid)).detach().cpu().double().numpy()
    groups = np.array_split(np.argsort(risk), 3)
    names = ("lowest risk third", "middle third", "highest risk third")
    mean_curves = [curves[g].mean(axis=0) for g in groups]
    observed = [kaplan_meier(time[g], event[g]) for g in groups]
    path = Path(folder) / f"survival-{split}.png"
    return [plot_survival(grid, np.stack(mean_curves), path, observed, names, title=f"{Path(folder).name} ({split})")]


def interval_figures(task: Any, model: Any, batch: Any, folder: Path, split: str, label: str) -> list[Path]:
    """The intervals figure of a task whose ``predict`` gives ``prediction``, ``lower`` and ``upper`` per row."""
    if batch is None:
        return []
    inputs, y = batch
    out = task.predict(model, inputs)
    if "lower" not in out:
        return []
    arrays = {k: v.detach().cpu().double().numpy() for k, v in out.items() if k in ("prediction", "lower", "upper")}
    path = Path(folder) / f"intervals-{split}.png"
    return [plot_intervals(y.detach().cpu().double().numpy(), arrays["prediction"], path, arrays["lower"], arrays["upper"],
                           title=f"{Path(folder).name} ({split})", label=label)]


def plot_forecasts(
    history: np.ndarray, truth: np.ndarray, forecast: np.ndarray, path: str | Path, lower: np.ndarray | None = None,
    upper: np.ndarray | None = None, title: str = "",
) -> Path:
    """One panel per window: its context, the truth after the origin, the forecast and (shaded) its interval."""
    history, truth, forecast = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (history, truth, forecast))
    n = len(history)
    fig, axes = _figure(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        c, h = history.shape[1], truth.shape[1]
        past, future = np.arange(-c + 1, 1), np.arange(1, h + 1)
        ax.plot(past, history[i], color="grey", lw=1.2, label="context")
        ax.plot(future, truth[i], color="black", lw=1.4, marker="o", ms=3, label="truth")
        ax.plot(future, forecast[i], color="C0", lw=1.6, marker="o", ms=3, label="forecast")
        if lower is not None and upper is not None:
            ax.fill_between(future, np.atleast_2d(lower)[i], np.atleast_2d(upper)[i], color="C0", alpha=0.25, label="interval")
        ax.axvline(0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel("steps from the origin")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def forecast_figures(task: Any, model: Any, batch: Any, folder: Path, split: str, windows: int = 4) -> list[Path]:
    """The last ``windows`` forecasts of a split's first batch against the truth (single-series runs)."""
    if batch is None or len(task.meta.get("scaling") or []) != 1:
        return []
    inputs, y = batch
    inputs, y = inputs[-windows:], y[-windows:]
    scaling = task.meta["scaling"][0]
    mean, std = float(scaling["mean"]), float(scaling["std"])
    out = task.predict(model, inputs)
    history = inputs[..., 0].detach().cpu().double().numpy() * std + mean
    truth = y.detach().cpu().double().numpy() * std + mean
    arrays = {k: v.detach().cpu().double().numpy() for k, v in out.items() if k in ("prediction", "lower", "upper")}
    path = Path(folder) / f"forecasts-{split}.png"
    return [plot_forecasts(history, truth, arrays["prediction"], path, arrays.get("lower"), arrays.get("upper"),
                           title=f"{Path(folder).name} ({split}, last {len(truth)} windows)")]
