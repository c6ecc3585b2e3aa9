"""``deepatlas report``: one self-contained HTML file for runs or a study."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import RUNS_DIR, STORAGE
from .format import out

app = typer.Typer()


@app.command()
def report(
    runs: list[str] = typer.Argument(None, help="Run ids, prefixes or folders (several: compared side by side)."),
    study: Optional[str] = typer.Option(None, "--study", help="Report a study instead of runs."),
    output: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write."),
    no_explanations: bool = typer.Option(False, "--no-explanations", help="Skip the explanations of image classifiers."),
    storage: Optional[str] = STORAGE,
    runs_dir: Optional[Path] = RUNS_DIR,
) -> None:
    """Write an offline HTML report: `deepatlas report RUN [RUN ...] --out report.html`, `deepatlas report --study NAME`."""
    from ..errors import ConfigError

    if study and runs:
        raise ConfigError("report: give runs or --study NAME, not both.")
    if study:
        from ..report.html import study_html
        from ..tune import study_report

        path = study_html(study_report(study, storage, runs_dir), output)
    else:
        if not runs:
            raise ConfigError("report: name at least one run (deepatlas runs lists them), or --study NAME.")
        from .. import api
        from ..report.html import run_report

        path = run_report([api.open_run(r, runs_dir) for r in runs], output, explanations=not no_explanations)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", markup=False)
