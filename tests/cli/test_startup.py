"""Interactive commands start without importing torch, Optuna or matplotlib (seconds of start-up each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "optuna", "matplotlib")

# Run the console entry point in a fresh interpreter, then report the heavy modules it imported.
WRAPPER = f"""
import json, sys
from deepatlas.cli import main
sys.argv = ["deepatlas", *json.loads(sys.argv[1])]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
sys.stderr.write("\\nHEAVY " + json.dumps([m for m in {HEAVY!r} if m in sys.modules]) + "\\n")
sys.exit(code)
"""


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(args)], capture_output=True, text=True, timeout=120,
        env=os.environ.copy(),
    )
    marker = [line for line in result.stderr.splitlines() if line.startswith("HEAVY ")]
    assert marker, result.stderr
    return result, json.loads(marker[-1][len("HEAVY "):])


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (("--help",), 0, "Train, evaluate, track and compare"),
        (("--version",), 0, "deepatlas "),
        (("models",), 0, "11,689,512"),  # resnet18's parameters, from the catalogue
        (("datasets",), 0, "fashion-mnist"),
        (("recipes",), 0, "quickstart"),
        (("train", "quickstart", "optim.lrr=0.1"), 2, "Did you mean 'lr'?"),
        (("train", "quickstart", "model.widht=64"), 2, "Did you mean 'width'?"),
        (("train", "quickstart", "model.name=resnet-18"), 2, "Did you mean 'resnet18'?"),
        (("train", "no-such-recipe"), 2, "no such file or recipe"),
    ],
)
def test_interactive_commands_do_not_import_heavy_libraries(args: tuple[str, ...], code: int, expected: str) -> None:
    result, heavy = run_cli(*args)
    assert result.returncode == code, result.stderr
    assert expected in result.stdout + result.stderr
    assert heavy == [], f"`deepatlas {' '.join(args)}` imported {heavy}"


def test_the_wrapper_sees_heavy_imports() -> None:
    """The check can fail: a command that trains or resolves data does import torch."""
    _, heavy = run_cli("config", "quickstart", "--docs")
    assert "torch" in heavy
