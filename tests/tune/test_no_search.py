"""Tuning a recipe without a `search:` section says so and names the recipes that have one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import deepatlas
from deepatlas.config import list_recipes, load_raw_recipe
from deepatlas.errors import ConfigError
from deepatlas.tune.study import recipes_with_search


def test_recipes_with_search_are_those_whose_merged_yaml_has_one() -> None:
    found = recipes_with_search()
    assert "lenet5-fashion-mnist-search" in found and "quickstart" not in found
    assert found == [name for name in list_recipes() if load_raw_recipe(name).get("search")]


def test_python_tune_of_a_recipe_without_search_names_the_ones_with_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        deepatlas.tune("quickstart", trials=20, runs_dir=tmp_path)
    text = str(info.value)
    assert text.startswith("recipe 'quickstart': has no `search:` section, so there is nothing to tune; recipes with one: ")
    assert "lenet5-fashion-mnist-search" in text and "`extends: quickstart`" in text and "\n" not in text
    assert not (tmp_path / "studies.db").exists()  # no study was created


def test_cli_tune_of_a_recipe_without_search_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deepatlas", "tune", "quickstart", "--trials", "1", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    text = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "recipe 'quickstart': has no `search:` section" in text and "lenet5-fashion-mnist-search" in text
    assert "search.space: required" not in text
