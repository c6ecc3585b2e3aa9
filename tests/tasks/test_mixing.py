"""Mixup and CutMix: soft targets, CutMix's area-corrected lambda, off by default, exact resume."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import deepatlas
from deepatlas.engine import load_checkpoint
from deepatlas.nn.mixing import MixSettings, cutmix, cutmix_box, mix_batch, mix_targets, mixup
from tests.conftest import tiny_recipe
from tests.engine.test_trainer import StopAt


def test_mixed_targets_are_distributions_that_weigh_both_labels() -> None:
    y = torch.tensor([0, 1, 2, 3])
    perm = torch.tensor([1, 2, 3, 0])
    targets = mix_targets(y, y[perm], 0.3, num_classes=5)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    assert targets[0, 0] == pytest.approx(0.3) and targets[0, 1] == pytest.approx(0.7)
    same = mix_targets(y, y, 0.3, num_classes=5)  # a pair of one class: that class, with weight one
    torch.testing.assert_close(same, F.one_hot(y, 5).float())


def test_mixup_is_the_convex_combination_and_the_loss_is_the_soft_target_cross_entropy() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    mixed = mixup(x, y, 0.25, perm)
    torch.testing.assert_close(mixed.x, 0.25 * x + 0.75 * x[perm])
    logits = torch.randn(6, 3)
    soft = F.cross_entropy(logits, mixed.targets(3))
    pairwise = 0.25 * F.cross_entropy(logits, mixed.y_a) + 0.75 * F.cross_entropy(logits, mixed.y_b)
    torch.testing.assert_close(soft, pairwise)


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
def test_cutmix_lambda_is_the_area_actually_kept(lam: float) -> None:
    torch.manual_seed(1)
    x = torch.zeros(8, 1, 10, 12)
    x[torch.arange(8) % 2 == 1] = 1.0  # odd images white, even images black
    perm = torch.arange(8).roll(1)  # every image gets its partner of the other colour
    for _ in range(20):  # many box centres, many of them clipped at the border
        box = cutmix_box(10, 12, lam, torch.device("cpu"))
        mixed = cutmix(x, torch.zeros(8, dtype=torch.long), box, perm)
        pasted = (mixed.x != x).float().mean(dim=(1, 2, 3))  # fraction of each image from its partner
        torch.testing.assert_close(pasted, torch.full((8,), 1.0 - mixed.lam))
        top, bottom, left, right = box
        assert 0 <= top <= bottom <= 10 and 0 <= left <= right <= 12


def test_mix_batch_draws_from_the_seeded_generator_and_does_nothing_when_off() -> None:
    x, y = torch.randn(16, 1, 8, 8), torch.arange(16) % 4
    assert mix_batch(x, y, MixSettings()) is None
    settings = MixSettings(mixup_alpha=0.4, cutmix_alpha=1.0, switch_prob=0.5)
    torch.manual_seed(3)
    first = [mix_batch(x, y, settings) for _ in range(30)]
    torch.manual_seed(3)
    again = [mix_batch(x, y, settings) for _ in range(30)]
    assert all(torch.equal(a.x, b.x) and a.lam == b.lam for a, b in zip(first, again, strict=True))
    assert {m.kind for m in first} == {"mixup", "cutmix"}  # the switch picks both
    assert all(0.0 <= m.lam <= 1.0 for m in first)
    torch.manual_seed(3)
    never = MixSettings(mixup_alpha=0.4, prob=0.0)
    assert mix_batch(x, y, never) is None


MIXED = tiny_recipe(**{
    "train.epochs": 2, "data.batch_size": 50, "task.mixup_alpha": 0.4, "task.cutmix_alpha": 1.0,
    "task.mix_prob": 0.8, "model.dropout": 0.1, "train.threads": 1,
})


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return deepatlas.train("quickstart", MIXED, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def test_mixing_trains_and_changes_training_while_off_by_default_changes_nothing(mixed_run: Any) -> None:
    assert mixed_run.status == "completed"
    base = tiny_recipe(**{"train.epochs": 2, "data.batch_size": 50, "model.dropout": 0.1, "train.threads": 1})
    plain = deepatlas.train("quickstart", base, progress=False)
    off = deepatlas.train("quickstart", [*base, "task.mixup_alpha=0", "task.cutmix_alpha=0", "task.mix_prob=0.5"],
                          progress=False)
    wp, wo, wm = (load_checkpoint(r.checkpoint("last"))["model"] for r in (plain, off, mixed_run))
    assert all(torch.equal(wp[k], wo[k]) for k in wp)
    assert any(not torch.equal(wp[k], wm[k]) for k in wp)
    assert mixed_run.summary["best"]["value"] > 0.5  # still learns the digits


def test_resume_is_exact_with_mixing_on(mixed_run: Any) -> None:
    stopped = deepatlas.train("quickstart", MIXED, callbacks=[StopAt(5)], progress=False)
    assert stopped.status == "interrupted"
    resumed = deepatlas.resume(stopped.id, progress=False)
    a, b = (load_checkpoint(r.checkpoint("last"))["model"] for r in (mixed_run, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cutmix_on_rows_is_refused_with_the_key() -> None:
    from deepatlas.tasks.classification import Classification, MixingClassificationConfig

    task = Classification(MixingClassificationConfig(cutmix_alpha=1.0), {"num_classes": 3})
    model = torch.nn.Linear(4, 3)
    with pytest.raises(deepatlas.ConfigError, match=r"task.cutmix_alpha: .*\(6, 4\)"):
        task.training_step(model, (torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])), "main")
    rows = Classification(MixingClassificationConfig(mixup_alpha=0.2), {"num_classes": 3})
    out = rows.training_step(model, (torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])), "main")
    assert torch.isfinite(out.loss)
