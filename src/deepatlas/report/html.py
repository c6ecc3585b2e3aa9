"""One self-contained, offline HTML file for runs or a study: look rather than read.

``deepatlas report RUN [RUN ...] --out report.html`` and ``deepatlas report --study NAME``. Every image
is a PNG inlined as a ``data:`` URI; there is no script, font or style sheet from elsewhere, so the
file opens anywhere without a network. The only script is inline and small: it checks that every
figure decoded (``naturalWidth > 0``) and records the outcome on ``<body data-figures=... data-broken=...>``
(what the browser test reads).

A run report: a summary table (status, model, data, parameters, time, throughput, energy, best
validation and test metrics), the configuration (in full for one run; for several, only the keys whose
values differ), training curves (the epoch metrics, and the step logs: loss, learning rate and
throughput over time) and each family's own figures, which the tasks wrote into the run folder through
the ``Task.figures`` contract (confusion matrices, reliability diagrams, samples, intervals, survival
curves, forecasts, attention maps, ...), plus explanations (Grad-CAM or saliency) of a few test images for
image classifiers, and for a language model a sample and its attention map. A study report: the best trials, parameter importances and the study's figures
(optimisation history, parallel coordinates, Pareto front).
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import write_text
from ..tracking.compare import flatten

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5rem;vertical-align:top}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.8rem;color:#555;text-align:center}details{margin:.5rem 0}pre{background:#f8f8f8;padding:.5rem;overflow:auto}
.muted{color:#777;font-size:.85rem}
"""

CHECK = """
<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img');
  var broken = 0;
  imgs.forEach(function (i) { if (!i.complete || i.naturalWidth === 0) { broken += 1; } });
  document.body.setAttribute('data-figures', String(imgs.length));
  document.body.setAttribute('data-broken', String(broken));
  document.body.setAttribute('data-status', broken === 0 ? 'ok' : 'broken');
});
</script>
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _esc("-" if value is None else value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _esc(value)


def _png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(data: bytes, caption: str, width: int | None = None) -> str:
    style = f' style="max-width:{width}px"' if width else ""
    return f'<figure><img alt="{_esc(caption)}" src="{_png(data)}"{style}><figcaption>{_esc(caption)}</figcaption></figure>'


def _fig_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_num(c)}</td>' if isinstance(c, (int, float)) and not isinstance(c, bool)
                         else f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, body: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>"
            f'<p class="muted">deepatlas report, {stamp}; a self-contained file (figures inlined).</p>{body}{CHECK}</body></html>')


# --------------------------------------------------------------------------- runs


def _step_figure(rows: Sequence[Mapping[str, Any]], title: str) -> bytes | None:
    """Training loss, learning rate and throughput against the step, from the run's step logs."""
    logs = [r for r in rows if r.get("kind") == "log"]
    keys = [k for k in ("loss", "lr", "samples_per_s") if any(k in r for r in logs)]
    if not logs or not keys:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    names = {"loss": "training loss", "lr": "learning rate", "samples_per_s": "throughput (samples/s)"}
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [(r["step"], r[key]) for r in logs if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2)
        ax.set_xlabel("step")
        ax.set_title(names[key], fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _fig_bytes(fig)


def _epoch_figure(rows: Sequence[Mapping[str, Any]], title: str) -> bytes | None:
    from .plots import plot_curves

    epochs = [r for r in rows if r.get("kind") == "epoch"]
    if not epochs:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = plot_curves(epochs, Path(folder) / "curves.png", title=title)
        return path.read_bytes() if path else None


def _explanations(run: Any, count: int = 4) -> bytes | None:
    """Rollout (a ViT), Grad-CAM (a convolutional model) or saliency of the first test images of an image classifier."""
    try:
        from ..build import load_trained_model, run_task
        from ..data import load_dataset
        from ..explain import default_method, explain

        config = run.config
        task = run_task(run)
        if task.predicts != "labels" or getattr(task, "data_kind", "") not in ("labelled", "images"):
            return None
        data = load_dataset(config.data, state_dir=run.path)
        if data.preprocessor().kind != "images":
            return None
        model, _, _, _ = load_trained_model(run, config, task, "best")
        model.eval()
        import torch

        x = next(iter(data.eval_batches("test", torch.device("cpu"))))[0][:count]
        method = default_method(model)
        heat = explain(model, x, method)
        with torch.no_grad():
            predicted = model(x).argmax(1).tolist()
        pre = data.preprocessor()
        shown = x * torch.tensor(pre.std)[:, None, None] + torch.tensor(pre.mean)[:, None, None]
    except Exception:  # an explanation is a nicety: a run the report cannot explain still reports
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = run.summary.get("data", {}).get("meta", {}).get("class_names") or []
    fig, axes = plt.subplots(2, len(x), figsize=(2.2 * len(x), 4.6), squeeze=False)
    for j in range(len(x)):
        img = shown[j].clamp(0, 1)
        img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
        h = heat[j]
        h = (h - h.min()) / (h.max() - h.min()).clamp_min(1e-12)
        axes[0][j].imshow(img, cmap="gray" if img.ndim == 2 else None)
        axes[0][j].set_title(str(names[predicted[j]]) if predicted[j] < len(names) else str(predicted[j]), fontsize=9)
        axes[1][j].imshow(img, cmap="gray" if img.ndim == 2 else None)
        axes[1][j].imshow(h, cmap="inferno", alpha=0.55)
        for ax in (axes[0][j], axes[1][j]):
            ax.axis("off")
    what = "attention rollout" if method == "rollout" else f"{method} of the predicted class"
    fig.suptitle(f"{what}, first test images", fontsize=10)
    return _fig_bytes(fig)


def _attention_figure(model: Any, ids: list[int], tokenizer: Any, caption: str) -> str:
    """The last attention layer's weights (head-averaged) of ``model`` on ``ids``, as an inline figure; ""
    for a model with no attention layer (a recurrent one)."""
    try:
        import torch

        from ..explain import record_attention

        weights = record_attention(model, torch.tensor([ids]))[-1][0].float().mean(0)  # (T, T), the last layer
    except Exception:  # a recurrent model has no attention
        return ""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = [tokenizer.decode([i]).replace("\n", "\\n").replace(" ", "\u2423") or "?" for i in ids]
    fig, ax = plt.subplots(figsize=(7, 6.5))
    ax.imshow(weights.numpy(), cmap="Greys", vmin=0, vmax=float(weights.max()))
    ax.set_xticks(range(len(ids)), labels, fontsize=6)
    ax.set_yticks(range(len(ids)), labels, fontsize=6)
    ax.set_xlabel("attended (key)")
    ax.set_ylabel("attending (query)")
    ax.set_title(f"last layer's attention, mean over heads, {caption}", fontsize=9)
    return _figure(_fig_bytes(fig), "attention map for a prompt")


def _first_sequence(run: Any, pad: int | None) -> list[int]:
    """The first sequence of the run's test split (else validation), without its padding."""
    import torch

    from ..data import load_dataset

    data = load_dataset(run.config.data, state_dir=run.path)
    split = "test" if "test" in getattr(data, "splits", {}) else "val"
    ids = next(iter(data.eval_batches(split, torch.device("cpu"))))[0][0].tolist()
    return [i for i in ids if i != pad] if pad is not None else ids


def _fill_mask(predictor: Any, ids: list[int], every: int = 7) -> str:
    """Every ``every``-th token of ``ids`` replaced by [MASK] and what the model fills in, beside the original."""
    import torch

    task, tokenizer = predictor.task, predictor.preprocessor.tokenizer
    masked = [task.mask_id if k % every == every // 2 and i not in task.special else i for k, i in enumerate(ids)]
    filled = task.predict(predictor.model, torch.tensor([masked]))["filled"][0].tolist()
    hidden = [k for k, (a, b) in enumerate(zip(ids, masked, strict=True)) if a != b]
    right = sum(filled[k] == ids[k] for k in hidden)

    def text(seq: list[int]) -> str:
        return "".join("\u2588" if i == task.mask_id else tokenizer.decode([i]) for i in seq)
    rows = [("original", text(ids)), ("masked (\u2588)", text(masked)), ("filled in", text(filled))]
    return (f"<h3>Filling in masked tokens</h3><p>{right} of {len(hidden)} masked tokens of the first test sequence "
            "restored.</p>" + "".join(f"<p><b>{_esc(k)}</b></p><pre>{_esc(v)}</pre>" for k, v in rows))


def _language(run: Any, tokens: int = 300, shown: int = 40) -> str:
    """For a language model: a sample (seed 0, temperature 0.8) and its last layer's attention over the sample's
    first tokens; for a masked language model the tokens it fills in; for any attention model of token
    sequences (BERT classifying text) the attention map of the first test sequence."""
    try:
        from ..build import run_task

        task = run_task(run)
        generates = task.can("generate")
        text_classifier = task.predicts == "labels" and (run.summary.get("data") or {}).get("meta", {}).get("pad_id") is not None
        if not (generates or task.predicts == "fill-mask" or text_classifier):
            return ""
        from ..predict import load

        predictor = load(run, device="cpu")
        tokenizer = getattr(predictor.preprocessor, "tokenizer", None)
        if tokenizer is None:
            return ""
        context = int(getattr(predictor.model.config, "block_size", 0) or getattr(predictor.model.config, "max_position", 0) or shown)
        if generates:
            text = predictor.generate("", max_new_tokens=tokens, seed=0)
            ids = tokenizer.encode(text)[:min(shown, context)]
            return f"<h3>A sample</h3><pre>{_esc(text)}</pre>" + _attention_figure(predictor.model, ids, tokenizer, "over the sample's start")
        ids = _first_sequence(run, predictor.meta.get("pad_id"))[:min(shown, context)]
        out = _fill_mask(predictor, ids) if task.predicts == "fill-mask" else ""
        return out + _attention_figure(predictor.model, ids, tokenizer, "over the first test sequence")
    except Exception:  # a sample is a nicety: a run that cannot show one here still reports
        return ""


def _summary_row(run: Any) -> list[Any]:
    s = run.summary
    t, progress, best = s.get("time") or {}, s.get("progress") or {}, s.get("best") or {}
    test = (s.get("eval") or {}).get("test") or {}
    shown_best = f"{best['metric']} {best['value']:.4g} (epoch {best.get('epoch')})" if isinstance(best.get("value"), (int, float)) else ""
    per_sample = (s.get("flops") or {}).get("train_per_sample")
    compute = per_sample * progress["samples"] if isinstance(per_sample, (int, float)) and progress.get("samples") else ""
    return [run.id, s.get("status", ""), s.get("model") or run.config.model.name, s.get("dataset") or run.config.data.name,
            (s.get("params") or {}).get("total", "") if isinstance(s.get("params"), dict) else s.get("params", ""), progress.get("epoch", ""), t.get("wall_s", ""), t.get("samples_per_s", ""),
            compute, s.get("peak_memory_mb", ""), (s.get("energy") or {}).get("kwh", ""), shown_best,
            ", ".join(f"{k} {v:.4g}" for k, v in list(test.items())[:4] if isinstance(v, (int, float)))]


def _config_section(runs: Sequence[Any]) -> str:
    flats = [flatten(r.config.to_dict()) for r in runs]
    if len(runs) == 1:
        rows = sorted(flats[0].items())
        return f"<h2>Configuration</h2><details><summary>{len(rows)} keys</summary>{_table(('key', 'value'), rows)}</details>"
    keys = sorted({k for f in flats for k in f})
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    out = "<h2>Configuration: the keys that differ</h2>"
    out += _table(("key", *[r.id for r in runs]), [[k, *[f.get(k, "-") for f in flats]] for k in differing]) if differing \
        else "<p>The runs have the same configuration.</p>"
    shared = [(k, flats[0].get(k)) for k in keys if k not in differing]
    return out + f"<details><summary>{len(shared)} keys the runs share</summary>{_table(('key', 'value'), shared)}</details>"


def _metrics_section(runs: Sequence[Any]) -> str:
    splits = sorted({split for r in runs for split in (r.summary.get("eval") or {})})
    rows = []
    for r in runs:
        final = r.summary.get("final") or {}
        for name, value in sorted(final.items()):
            if isinstance(value, (int, float)):
                rows.append([r.id, "last validation", name.removeprefix("val/"), value])
        for split in splits:
            for name, value in sorted(((r.summary.get("eval") or {}).get(split) or {}).items()):
                if isinstance(value, (int, float)):
                    rows.append([r.id, split, name, value])
    return "<h2>Metrics</h2>" + (_table(("run", "split", "metric", "value"), rows) if rows else "<p>No metrics recorded yet.</p>")


def run_report(runs: Sequence[Any], out: str | Path, explanations: bool = True) -> Path:
    """Write the HTML report of ``runs`` (store :class:`~deepatlas.tracking.Run` objects) to ``out``."""
    runs = list(runs)
    header = ("run", "status", "model", "data", "parameters", "epochs", "wall s", "samples/s", "training FLOPs", "peak MB", "energy kWh", "best", "test")
    body = "<h2>Summary</h2>" + _table(header, [_summary_row(r) for r in runs])
    body += _config_section(runs) + _metrics_section(runs)
    for r in runs:
        rows = r.metrics()
        body += f"<h2>{_esc(r.id)}</h2><h3>Training</h3>"
        for figure, caption in ((_epoch_figure(rows, "per epoch"), "training and validation metrics per epoch"),
                                (_step_figure(rows, "per logged step"), "loss, learning rate and throughput over the steps")):
            if figure:
                body += _figure(figure, caption)
        pictures = [p for p in sorted(r.path.glob("*.png")) if p.name != "curves.png"]
        pictures += sorted((r.path / "samples").glob("*.png")) if (r.path / "samples").is_dir() else []
        if pictures:
            body += "<h3>Figures</h3>" + "".join(_figure(p.read_bytes(), p.stem, width=560) for p in pictures)
        body += _language(r)
        if explanations:
            picture = _explanations(r)
            if picture:
                body += "<h3>Explanations</h3>" + _figure(picture, "what the predicted class depends on")
    title = runs[0].id if len(runs) == 1 else f"{len(runs)} runs"
    path = Path(out)
    write_text(path, _page(f"deepatlas: {title}", body))
    return path


# --------------------------------------------------------------------------- studies


def study_html(report: Mapping[str, Any], out: str | Path) -> Path:
    """Write the HTML report of a study (``deepatlas.tune.study_report``'s dictionary) to ``out``."""
    objectives = report.get("objectives") or []
    body = "<h2>Study</h2>" + _table(("key", "value"), [
        ("name", report.get("name", "")), ("trials", len(report.get("trials") or [])),
        ("objectives", ", ".join(f"{o['name']} ({o['direction']})" for o in objectives)),
    ])
    best = report.get("best") or []
    if best:
        names = [o["name"] for o in objectives]
        params = sorted({k for t in best for k in (t.get("params") or {})})
        rows = [[t.get("number", ""), *(t.get("values") or []), *[(t.get("params") or {}).get(p, "") for p in params]] for t in best]
        body += "<h2>Best trials</h2>" + _table(("trial", *names, *params), rows)
    for objective, values in (report.get("importances") or {}).items():
        if values:
            body += f"<h2>Parameter importances: {_esc(objective)}</h2>" + _table(("parameter", "importance"), sorted(
                values.items(), key=lambda kv: -kv[1]))
    figures = [Path(f) for f in report.get("figures") or [] if Path(f).is_file()]
    if figures:
        body += "<h2>Figures</h2>" + "".join(_figure(p.read_bytes(), p.stem, width=560) for p in figures)
    path = Path(out)
    write_text(path, _page(f"deepatlas study: {report.get('name', '')}", body))
    return path


__all__ = ["run_report", "study_html"]
