"""``deepatlas models``, ``datasets``, ``recipes`` and ``config``: what there is, and what a recipe resolves to.

``models`` and ``datasets`` read the registries' catalogue (``catalogue.json``),
so they answer without importing torch.
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.markup import escape

from .format import err, first_sentence, number, out, table

app = typer.Typer()

SECTIONS = ("data", "model", "task", "optim", "schedule", "train")


@app.command()
def models(family: Optional[str] = typer.Option(None, "--family", help="Only this family (mlp, cnn, resnet, ...).")) -> None:
    """Registered models with their parameter counts at their preset sizes."""
    from ..registry import MODELS

    listed = table(("model", "family", "parameters", "description"), right=("parameters",))
    for entry in MODELS.listings().values():
        if family and entry.family != family:
            continue
        listed.add_row(entry.name, entry.family, f"{entry.params:,}" if entry.params is not None else "-", entry.doc)
    out.print(listed)


@app.command()
def datasets() -> None:
    """Built-in datasets and bring-your-own readers."""
    from ..registry import DATASETS

    listed = table(("dataset", "kind", "description"))
    for entry in DATASETS.listings().values():
        listed.add_row(entry.name, entry.family, entry.doc)
    out.print(listed)


@app.command()
def recipes() -> None:
    """Recipes you can train by name."""
    from ..config import list_recipes, read_yaml

    listed = table(("recipe", "description"))
    for name, path in list_recipes().items():
        raw = read_yaml(path) or {}
        listed.add_row(name, first_sentence(str(raw.get("description", ""))))
    out.print(listed)


@app.command()
def config(
    recipe: str = typer.Argument(..., help="Recipe name or path."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides."),
    docs: bool = typer.Option(False, "--docs", help="Every key with its type, value and one-line doc."),
) -> None:
    """Print the fully resolved config of a recipe (what `train` would run)."""
    from ..config import load_recipe

    cfg = load_recipe(recipe, list(overrides or []))
    if not docs:
        typer.echo(cfg.to_yaml(), nl=False)  # raw text: it must load back as YAML
        return
    cfg, from_data = _resolved(cfg)
    from .. import schema

    for section in SECTIONS:
        value = getattr(cfg, section)
        keys = table(("key", "value", "type", "doc"), title=section)
        parts = [value] + ([value.options] if getattr(value, "options", None) is not None else [])
        for part in parts:
            for name, kind, _default, doc in schema.field_docs(type(part)):
                if name == "options":
                    continue
                v = getattr(part, name)
                shown = f"{v:g}" if isinstance(v, float) and 0 < abs(v) < 1e-3 else number(v)  # eps 1e-08, not 0.0000
                if section == "model" and name in from_data:
                    shown += " (from the data)"
                keys.add_row(escape(name), escape(shown), escape(kind), escape(doc))  # [stem, head] is text, not markup
        out.print(keys)


def _resolved(cfg: Any) -> tuple[Any, set[str]]:
    """The config with the model's data-bound keys taken from the dataset, and which keys those are.

    The dataset is loaded for its meta (digits is embedded and instant); when it
    cannot be (not downloaded), the preset values are shown with a warning.
    """
    from ..api import resolve_model_config
    from ..data import load_dataset
    from ..errors import DataError
    from ..models.base import DATA_BOUND_FIELDS

    try:
        meta = load_dataset(cfg.data).meta
    except DataError as exc:
        err.print(f"[yellow]warning:[/yellow] model keys not resolved from the data: {escape(str(exc))}", soft_wrap=True)
        return cfg, set()
    from ..build import build_task
    from ..errors import ConfigError, RunError

    try:
        meta = {**meta, **build_task(cfg, meta).model_meta()}  # what the task decides (a table model's outputs)
    except (ConfigError, RunError) as exc:  # e.g. distillation without its teacher yet: the keys are still worth showing
        err.print(f"[yellow]warning:[/yellow] the task cannot be built yet: {escape(str(exc))}", soft_wrap=True)
    options = cfg.model.options
    bound = {key for key in DATA_BOUND_FIELDS if hasattr(options, key) and meta.get(key) is not None}
    return resolve_model_config(cfg, meta), bound
