"""The HTML report as a person sees it: opened in headless Chromium, every figure decoded, no console error."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import deepatlas
from deepatlas.cli import app
from tests.conftest import tiny_recipe

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run must install it (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return found


def _open(page: Path, tmp_path: Path) -> tuple[str, str, Path]:
    """(the DOM after load, Chromium's log, a screenshot) of ``page``."""
    browser = _chromium()
    url = page.resolve().as_uri()
    dom = subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    shot = tmp_path / f"{page.stem}.png"
    logged = subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile-shot'}", "--enable-logging=stderr", "--v=0",
                             "--window-size=1280,2400", f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    return dom.stdout, logged.stderr, shot


def _check(page: Path, tmp_path: Path, figures_at_least: int) -> None:
    dom, log, shot = _open(page, tmp_path)
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    tag = body.group(0)
    assert 'data-status="ok"' in tag and 'data-broken="0"' in tag, tag
    assert int(re.search(r'data-figures="(\d+)"', tag).group(1)) >= figures_at_least
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # nothing fetched from elsewhere
    errors = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not errors, errors
    assert shot.is_file() and shot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_run_report_in_a_browser(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = deepatlas.train("quickstart", tiny_recipe(**{"train.test": True}), runs_dir=runs, progress=False)
    b = deepatlas.train("quickstart", tiny_recipe(**{"train.test": True, "optim.lr": 0.003}), runs_dir=runs, progress=False)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", a.id, b.id, "--out", str(page), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "optim.lr" in text and "the keys that differ" in text  # the config difference between the runs
    assert "training FLOPs" in text and "energy kWh" in text  # compute and energy
    assert text.count("<img") >= 4  # curves of both runs, and their confusion and reliability figures
    _check(page, tmp_path, 4)


def test_study_report_in_a_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.delenv("DEEPATLAS_STUDY_STORAGE", raising=False)
    runs = tmp_path / "runs"
    path = tmp_path / "digits-search.yaml"
    path.write_text(yaml.safe_dump({"extends": "quickstart", "search": {"space": {
        "optim.lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True}, "model.depth": {"type": "int", "low": 1, "high": 2}}}}))
    overrides = [o for o in tiny_recipe(**{"train.test": "false"}) if not o.startswith("optim.lr=")]
    result = deepatlas.tune(str(path), overrides, trials=3, sampler="random", runs_dir=runs)
    page = tmp_path / "study.html"
    cli = CliRunner().invoke(app, ["report", "--study", result.name, "--out", str(page), "--runs-dir", str(runs)])
    assert cli.exit_code == 0, cli.output
    text = page.read_text()
    assert "Best trials" in text and "Parameter importances" in text
    _check(page, tmp_path, 2)  # the optimisation history and the parallel coordinates


def test_language_model_report_has_a_sample_and_an_attention_map(tmp_path: Path) -> None:
    from deepatlas.report.html import run_report
    from tests.test_language_e2e import CORPUS, lm_overrides

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    run = deepatlas.train("gpt-shakespeare-char", lm_overrides(corpus, **{"train.max_steps": 20}), runs_dir=tmp_path / "runs",
                          progress=False)
    text = run_report([run], tmp_path / "lm.html").read_text()
    assert "A sample</h3><pre>" in text and "attention map for a prompt" in text
