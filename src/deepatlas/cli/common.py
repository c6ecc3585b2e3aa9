"""What every command group shares: the run-store and study-storage options and logging set-up."""

from __future__ import annotations

import logging
import sys

import typer

from .format import err

RUNS_DIR = typer.Option(None, "--runs-dir", envvar="DEEPATLAS_RUNS_DIR", help="Run store folder (default: ./runs).")
STORAGE = typer.Option(
    None, "--storage", envvar="DEEPATLAS_STUDY_STORAGE",
    help="Optuna storage URL, e.g. postgresql://user@host/db (default: sqlite:///<runs-dir>/studies.db).",
)


def setup_logging(quiet: bool, plain: bool) -> None:
    """Library log lines to stderr: rich on a terminal, timestamped lines elsewhere (``plain``)."""
    level = logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if err.is_terminal and not plain:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=err, show_path=False, show_time=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries' info lines ("NumExpr defaulting to 2 threads.") stay out
    logging.getLogger("deepatlas").setLevel(level)
