"""Runs side by side: which config keys differ, their metrics, and whether they saw the same data
and ran in the same environment (library versions, device, code)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .store import Run


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def compare(runs: Sequence[Run]) -> dict[str, Any]:
    """``{"runs", "config" (differing keys only), "metrics", "warnings"}`` for ``runs``."""
    configs = [flatten(run.config.to_dict()) for run in runs]
    keys = sorted(set().union(*configs)) if configs else []
    differing = {
        k: [c.get(k) for c in configs] for k in keys if len({repr(c.get(k)) for c in configs}) > 1
    }
    summaries = [run.summary for run in runs]
    metrics: dict[str, list[Any]] = {
        "status": [s.get("status") for s in summaries],
        "params": [(s.get("params") or {}).get("total") for s in summaries],
        "epochs": [(s.get("progress") or {}).get("epoch") for s in summaries],
        "wall_s": [(s.get("time") or {}).get("wall_s") for s in summaries],
        "samples_per_s": [(s.get("time") or {}).get("samples_per_s") for s in summaries],
    }
    if any(s.get("lineage") for s in summaries):  # compressed models: where each came from and how
        metrics["derived from"] = [(s.get("lineage") or {}).get("parent") for s in summaries]
        metrics["derived by"] = [derivation(s.get("lineage")) for s in summaries]
        for key in ("size_bytes", "size_gzip_bytes", "sparsity", "flops", "sparse_flops"):
            if any(key in (s.get("compression") or {}) for s in summaries):
                metrics[key] = [(s.get("compression") or {}).get(key) for s in summaries]
        for n in ("1", "64"):  # CPU latency, measured when the derived run was made (its parent timed beside it)
            if any(n in ((s.get("compression") or {}).get("latency_ms") or {}) for s in summaries):
                metrics[f"latency_ms_b{n}"] = [((s.get("compression") or {}).get("latency_ms") or {}).get(n) for s in summaries]
                metrics[f"parent_latency_ms_b{n}"] = [
                    ((s.get("compression") or {}).get("parent_latency_ms") or {}).get(n) for s in summaries
                ]
    monitors = {(s.get("best") or {}).get("metric") for s in summaries} - {None}
    for monitor in sorted(monitors):
        metrics[f"best {monitor}"] = [
            (s.get("best") or {}).get("value") if (s.get("best") or {}).get("metric") == monitor else None
            for s in summaries
        ]
    val_keys = sorted(set().union(*[(s.get("final") or {}).keys() for s in summaries]))
    for key in val_keys:
        metrics[f"last {key}"] = [(s.get("final") or {}).get(key) for s in summaries]
    test_keys = sorted(set().union(*[((s.get("eval") or {}).get("test") or {}).keys() for s in summaries]))
    for key in test_keys:
        metrics[f"test/{key}"] = [((s.get("eval") or {}).get("test") or {}).get(key) for s in summaries]
    warnings = []
    for split in ("train", "val", "test"):
        prints = [((s.get("data") or {}).get("fingerprints") or {}).get(split) for s in summaries]
        known = {p for p in prints if p}
        if len(known) > 1:
            groups = ", ".join(f"{run.id}: {p[:12] if p else '?'}" for run, p in zip(runs, prints, strict=True))
            warnings.append(f"the runs saw different {split} data (fingerprints {groups})")
    warnings += _environment_warnings(runs)
    return {"runs": [run.id for run in runs], "config": differing, "metrics": metrics, "warnings": warnings}


def derivation(lineage: Mapping[str, Any] | None) -> str | None:
    """``prune (method global, sparsity 0.5)``: the kind of a derived run and its scalar details."""
    if not lineage:
        return None
    details = ", ".join(f"{k} {v}" for k, v in lineage.items() if k not in ("parent", "kind") and not isinstance(v, (dict, list)))
    return f"{lineage.get('kind')}" + (f" ({details})" if details else "")


# What `tracking.environment()` records that can change a result or its speed, as shown in a warning.
_ENVIRONMENT = {
    "deepatlas": "deepatlas versions", "torch": "torch versions", "numpy": "numpy versions",
    "python": "Python versions", "device": "devices", "device_name": "device models",
}


def _environment_warnings(runs: Sequence[Run]) -> list[str]:
    """One warning per recorded environment field (versions, device, git commit) on which the runs differ."""
    envs = [run.summary.get("environment") or {} for run in runs]
    fields = {key: [env.get(key) for env in envs] for key in _ENVIRONMENT}
    fields["commit"] = [((env.get("git") or {}).get("commit") or "")[:10] or None for env in envs]
    warnings = []
    for key, seen in fields.items():
        if len({v for v in seen if v is not None}) > 1:
            groups = ", ".join(f"{run.id}: {v if v is not None else '?'}" for run, v in zip(runs, seen, strict=True))
            warnings.append(f"the runs ran with different {_ENVIRONMENT.get(key, 'git commits')} ({groups})")
    return warnings


def aggregate(rows: Sequence[dict[str, Any]], split: str = "test") -> list[dict[str, Any]]:
    """Mean and sample standard deviation of each ``split`` metric over completed runs, one group per
    (recipe, model, dataset): how a result over several seeds or folds is reported."""
    import json
    import statistics

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") != "completed":
            continue
        summary = row["summary"] if isinstance(row.get("summary"), dict) else json.loads(row.get("summary") or "{}")
        groups.setdefault((row.get("recipe") or "", row.get("model") or "", row.get("dataset") or ""), []).append(summary)
    out = []
    for (recipe, model, dataset), summaries in groups.items():
        evals = [s.get("eval", {}).get(split, {}) for s in summaries]
        keys = sorted({k for e in evals for k, v in e.items() if isinstance(v, (int, float))})
        metrics = {}
        for key in keys:
            values = [float(e[key]) for e in evals if isinstance(e.get(key), (int, float))]
            metrics[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
        wall = [float((s.get("time") or {}).get("wall_s") or 0.0) for s in summaries]
        out.append({"recipe": recipe, "model": model, "dataset": dataset, "runs": len(summaries), "metrics": metrics,
                    "mean_wall_s": statistics.fmean(wall) if wall else 0.0})
    return out
