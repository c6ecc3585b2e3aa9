"""Recipes: validation messages, overrides, YAML errors, extends, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from deepatlas import schema
from deepatlas.config import Config, list_recipes, load_recipe, parse_override
from deepatlas.errors import ConfigError


def error_of(overrides: list[str], recipe: str = "quickstart") -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe, overrides)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


def test_every_shipped_recipe_validates_and_round_trips() -> None:
    recipes = list_recipes()
    assert {"quickstart", "resnet20-fashion-mnist"} <= set(recipes)
    for name in recipes:
        config = load_recipe(name)
        again = Config.from_dict(yaml.safe_load(config.to_yaml()))
        assert again == config, name


def test_unknown_key_names_path_allowed_keys_and_suggestion() -> None:
    message = error_of(["optim.lrr=0.1"])
    assert message.startswith("optim.lrr: unknown key")
    assert "lr" in message and "Did you mean 'lr'?" in message


def test_unknown_model_option_is_checked_against_that_models_config() -> None:
    message = error_of(["model.dpeth=3"])
    assert message.startswith("model.dpeth: unknown key") and "Did you mean 'depth'?" in message


def test_wrong_type_names_value_and_expected_type() -> None:
    message = error_of(["train.epochs=ten"])
    assert message == "train.epochs: expected an integer, got 'ten'."


def test_bad_enum_lists_choices_and_suggests() -> None:
    message = error_of(["optim.name=adamx"])
    assert message.startswith("optim.name: 'adamx' is not allowed (allowed: sgd, adam, adamw, rmsprop, adagrad, lbfgs)")
    assert "Did you mean 'adam" in message


def test_unknown_model_name_suggests_a_registered_one() -> None:
    message = error_of(["model.name=resnet-20"])
    assert "model.name: unknown model 'resnet-20'" in message and "Did you mean 'resnet20'?" in message


def test_out_of_range_value() -> None:
    assert "must be >= 1" in error_of(["data.batch_size=0"])
    assert "must be <= 0.9" in error_of(["data.val_fraction=0.95"])


def test_cross_field_validation() -> None:
    assert "needs optim.name=sgd" in error_of(["optim.nesterov=true"])
    assert "needs at least one milestone" in error_of(["schedule.name=multi-step"])
    assert "is not a device" in error_of(["train.device=gpu"])


def test_unknown_recipe_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'quickstart'"):
        load_recipe("quikstart")


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("optim.lr")
    with pytest.raises(ConfigError, match="is a section"):
        load_recipe("quickstart", ["optim=3"])


def test_overrides_are_parsed_as_yaml() -> None:
    assert parse_override("schedule.milestones=[10, 20]") == ("schedule.milestones", [10, 20])
    assert parse_override("train.grad_clip=null") == ("train.grad_clip", None)
    config = load_recipe("quickstart", ["optim.lr=3e-4", "schedule.name=multi-step", "schedule.milestones=[10, 20]"])
    assert config.optim.lr == pytest.approx(3e-4)  # PyYAML reads 3e-4 as a string: coerced
    assert config.schedule.milestones == (10.0, 20.0)


def test_changing_model_name_drops_keys_of_the_old_model() -> None:
    # the recipe sets activation: gelu for its MLP; LeNet-5 starts from its own preset
    config = load_recipe("quickstart", ["model.pool=max", "model.name=lenet5"])
    assert config.model.options.pool == "max"  # name overrides apply first, whatever their order
    assert config.model.name == "lenet5"
    assert config.model.options.activation == "tanh"  # lenet5 preset, not the MLP keys of the recipe


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  name: digits\n model: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+"):
        load_recipe(path)


def test_extends_merges_a_base_recipe(tmp_path: Path) -> None:
    path = tmp_path / "child.yaml"
    path.write_text("extends: quickstart\noptim:\n  lr: 0.01\n")
    config = load_recipe(path)
    assert config.optim.lr == 0.01 and config.optim.name == "adamw" and config.data.name == "digits"
    assert config.recipe == "child"


def test_model_section_is_required() -> None:
    with pytest.raises(ConfigError, match="model.name: required"):
        Config.from_dict({"data": {"name": "digits"}})


def test_unknown_top_level_section() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'optim'"):
        Config.from_dict({"model": {"name": "mlp"}, "optimizer": {}})


_scalar = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.text(max_size=5))


@given(value=_scalar)
def test_coerce_never_crashes_and_respects_types(value: object) -> None:
    for tp, check in ((int, int), (float, float), (bool, bool), (str, str), (tuple[int, ...], tuple)):
        try:
            out = schema.coerce(value, tp, "x")
        except ConfigError as exc:
            assert str(exc).startswith(("x: ", "x[0]: "))
            continue
        assert isinstance(out, check)
        if check is tuple:
            assert all(isinstance(v, int) and not isinstance(v, bool) for v in out)
