"""The ``deepatlas`` command line: thin, it parses, calls the public API and prints.

One module per command group: ``train`` (train, eval, sample), ``predict`` (predict, export),
``compress`` (compress, quantize),
``embed`` (embed, search-images), ``runs``,
``bench``, ``tune`` (tune, studies, bench tune) and ``catalog`` (models,
datasets, recipes, config); ``format`` is how they all print. Nothing heavy
is imported before a command needs it: ``--help``, ``models`` and a recipe
error answer without importing torch, Optuna or matplotlib.

Errors a user can cause (a bad recipe key, a missing file, an unknown run)
print one line and exit with code 2; ``--debug`` shows the traceback instead.
A failed run exits with 1, an interrupted one with 130.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.markup import escape

from .. import __version__
from ..errors import DeepAtlasError
from . import bench, catalog, compress, crossval, embed, explain, predict, report, runs, train, tune
from .format import err, out

app = typer.Typer(
    name="deepatlas",
    help="Train, evaluate, track and compare the cornerstone deep-learning architectures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# The order of `deepatlas --help`: the daily commands first, then the catalogues, then the groups.
app.add_typer(train.app)
app.add_typer(catalog.app)
app.add_typer(predict.app)
app.add_typer(compress.app)
app.add_typer(explain.app)
app.add_typer(report.app)
app.add_typer(embed.app)
app.add_typer(crossval.app)
app.add_typer(tune.app)
app.add_typer(runs.app, name="runs")
app.add_typer(bench.app, name="bench")
app.add_typer(tune.studies_app, name="studies")
bench.app.command("tune")(tune.bench_tune)

_state = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        out.print(f"deepatlas {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def main() -> None:
    """Entry point of the ``deepatlas`` console script."""
    try:
        app()
    except DeepAtlasError as exc:
        if _state["debug"]:
            raise
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)  # messages may hold [brackets]
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


__all__ = ["app", "main"]
