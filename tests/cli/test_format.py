"""How the CLI prints: first sentences, significant digits, the git row."""

from __future__ import annotations

from deepatlas.cli.format import assignments, first_sentence, git_text, number, significant


def test_first_sentence_does_not_stop_inside_parentheses_or_at_et_al() -> None:
    text = ("DCGAN (Radford et al. 2016) on Fashion-MNIST: the non-saturating loss, Adam (lr 2e-4, beta1 0.5) for both "
            "networks, batch 128. Variants are overrides: task.loss=wgan-gp.")
    assert first_sentence(text) == ("DCGAN (Radford et al. 2016) on Fashion-MNIST: the non-saturating loss, Adam "
                                    "(lr 2e-4, beta1 0.5) for both networks, batch 128.")
    long = "LeNet-5 as in LeCun et al. showed it with tanh units and average pooling on zero-padded 32x32 inputs, long ago. " * 2
    assert first_sentence(long).startswith("LeNet-5 as in LeCun et al. showed") and first_sentence(long).count(".") == 2


def test_a_short_description_is_shown_whole() -> None:
    text = "A multilayer perceptron on digits. Reaches 97% in seconds."
    assert first_sentence(text) == text
    assert first_sentence("") == ""


def test_sampled_values_print_with_four_significant_digits() -> None:
    assert significant(0.0012520653814999472) == "0.001252"
    assert assignments({"optim.lr": 0.0012520653814999472, "model.depth": 3, "optim.name": "sgd"}) == (
        "optim.lr=0.001252 model.depth=3 optim.name=sgd"
    )
    assert number(0.87345678) == "0.8735" and number(123456) == "123,456" and number(None) == "-"


def test_git_row_is_short_commit_and_dirty_flag() -> None:
    assert git_text({"commit": "0123456789abcdef" * 2, "dirty": True}) == "0123456789 (uncommitted changes)"
    assert git_text({"commit": "fedcba9876543210", "dirty": False, "branch": "main"}) == "fedcba9876 on main (clean)"
    assert git_text(None) == "- (not a git checkout)"
