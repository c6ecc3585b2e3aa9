"""Fuzzing recipe files and override strings through the real CLI entry point, in process.

Every generated case must end either valid (the resolved config prints and reads back as YAML)
or in a DeepAtlasError whose message is one line: never a traceback. Hypothesis draws the cases;
1,000+ run in every CI run (500 override lists, 400 recipe files, 200 raw byte files).
"""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from deepatlas.cli import app
from deepatlas.errors import DeepAtlasError

RECIPES = ["quickstart", "gpt-shakespeare-char", "gcn-cora", "vae-fashion-mnist", "transformer-reverse-shakespeare"]
KEYS = [
    "optim.lr", "optim.name", "optim.weight_decay", "optim.betas", "train.epochs", "train.max_steps", "train.seed",
    "train.device", "train.precision", "train.monitor", "train.mode", "train.threads", "train.grad_clip",
    "data.name", "data.batch_size", "data.val_fraction", "data.path", "model.name", "model.width", "model.depth",
    "model.n_embd", "task.name", "task.topk", "schedule.name", "schedule.warmup", "search.space",
    "recipe", "extends", "optim", "train", "model.options", "data.options.x", "nosection.key", "model..width", "",
]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "null", "true", "[]", "{}", "[1, 2]", "{a: 1}", "'", "\"", "[", "{", "",
                     "1e400", "0x10", "1_000", "adam", "cuda", "fp16", "bf16", "cpu", "../..", "/abs", "~"]),
    TEXT,
)
OVERRIDE = st.one_of(st.tuples(st.sampled_from(KEYS), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), TEXT)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                 st.floats(allow_nan=True, allow_infinity=True), TEXT)
SECTION_KEYS = st.sampled_from(["name", "lr", "epochs", "width", "batch_size", "options", "seed", "path", "bogus"])
SECTION = st.dictionaries(SECTION_KEYS, LEAF, max_size=4)
RECIPE = st.dictionaries(
    st.sampled_from(["extends", "data", "model", "task", "optim", "schedule", "train", "search", "description", "x"]),
    st.one_of(SECTION, LEAF, st.sampled_from(RECIPES), st.lists(LEAF, max_size=3)),
    max_size=6,
)
def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def check(args: list[str]) -> None:
    """Run ``deepatlas config ...``: valid, or one DeepAtlasError line; anything else fails the test."""
    result = CliRunner().invoke(app, ["config", *args], catch_exceptions=True)
    if result.exception is None or isinstance(result.exception, SystemExit):
        if result.exit_code == 0:
            yaml.safe_load(result.output)  # what `config` prints reads back
        return
    if not isinstance(result.exception, DeepAtlasError):
        raise AssertionError(f"deepatlas config {args!r}: traceback {type(result.exception).__name__}: {result.exception}") \
            from result.exception
    message = str(result.exception)
    assert message and "\n" not in message.strip(), f"not one line: {message!r}"


@fuzz(500)
@given(recipe=st.sampled_from(RECIPES), overrides=st.lists(OVERRIDE, max_size=4))
def test_override_strings_are_valid_or_one_line_errors(recipe: str, overrides: list[str]) -> None:
    check([recipe, *overrides])


@fuzz(400)
@given(recipe=RECIPE)
def test_recipe_files_are_valid_or_one_line_errors(recipe: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("recipe") / "fuzz.yaml"
    try:
        text = yaml.safe_dump(recipe, allow_unicode=True)
    except yaml.YAMLError:
        return
    path.write_text(text, encoding="utf-8")
    check([str(path)])


@fuzz(200)
@given(content=st.binary(max_size=200))
def test_raw_bytes_as_a_recipe_file_are_one_line_errors(content: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("recipe") / "fuzz.yaml"
    path.write_bytes(content)
    check([str(path)])


def test_the_fuzz_check_itself_fails_on_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepatlas.config

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(deepatlas.config, "load_recipe", broken)
    with pytest.raises(AssertionError, match="traceback KeyError"):
        check(["quickstart"])
    assert math.isfinite(1.0)
