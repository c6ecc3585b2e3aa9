"""Distillation (Hinton et al. 2015): the loss on a hand-computed case, a frozen teacher, a student run."""

from __future__ import annotations

import math

import pytest
import torch

import deepatlas
from deepatlas.errors import ConfigError
from deepatlas.tasks.distillation import distillation_loss
from tests.conftest import tiny_recipe


def test_loss_matches_a_hand_computed_case() -> None:
    # student (1, 0), teacher (0, 1), T = 2: p_s = softmax(0.5, 0), p_t = softmax(0, 0.5), so
    # KL(p_t || p_s) = (s(0.5) - s(-0.5)) * 0.5 with s the logistic function; CE = log(1 + e^-1).
    sig = 1 / (1 + math.exp(-0.5))
    kl = (sig - (1 - sig)) * 0.5
    ce = math.log(1 + math.exp(-1))
    loss, soft, hard = distillation_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]), 2.0, 0.5)
    assert soft.item() == pytest.approx(kl, rel=1e-6) and hard.item() == pytest.approx(ce, rel=1e-6)
    assert loss.item() == pytest.approx(0.5 * 4 * kl + 0.5 * ce, rel=1e-6)  # the T^2 factor on the soft term


def test_alpha_one_is_pure_soft_targets_and_zero_when_the_student_copies_the_teacher() -> None:
    z = torch.randn(5, 4)
    loss, _, _ = distillation_loss(z, z.clone(), torch.zeros(5, dtype=torch.long), 3.0, 1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


@pytest.fixture
def teacher() -> deepatlas.tracking.Run:
    return deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1, "model.width": 32}), progress=False)


def test_the_teacher_is_frozen_and_gets_no_gradient(teacher: deepatlas.tracking.Run) -> None:
    from deepatlas.build import build, build_task

    config = deepatlas.config.load_recipe("quickstart", tiny_recipe(**{"task.name": "distillation", "task.teacher": teacher.id,
                                                                      "model.width": 16}))
    meta = teacher.summary["data"]["meta"]
    config, task, student = build(config, meta)  # check_model loads the teacher before any work
    t = task.teacher()
    before = {k: v.clone() for k, v in t.state_dict().items()}
    student.train()
    t.train()  # even a caller that sets train mode cannot make the teacher update its statistics
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    out = task.training_step(student, (x, y), "main")
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in t.parameters())
    assert any(p.grad is not None for p in student.parameters())
    assert not t.training and all(torch.equal(before[k], v) for k, v in t.state_dict().items())
    assert not any(n.startswith("teacher") for n in student.state_dict())  # the student's checkpoint is its own
    assert build_task(config, meta).lineage()["parent"] == teacher.id


def test_a_student_run_trains_and_links_to_its_teacher(teacher: deepatlas.tracking.Run) -> None:
    student = deepatlas.train("quickstart", tiny_recipe(**{"task.name": "distillation", "task.teacher": teacher.id,
                                                           "model.width": 16, "task.temperature": 4}), progress=False)
    s = student.summary
    assert s["status"] == "completed" and s["lineage"]["parent"] == teacher.id and s["lineage"]["kind"] == "distillation"
    assert s["params"]["total"] < teacher.summary["params"]["total"]
    assert deepatlas.load(student.id).predict(torch.zeros(2, 1, 8, 8).numpy()) is not None  # no teacher needed to predict


def test_missing_or_unknown_teacher_is_a_one_line_error(teacher: deepatlas.tracking.Run) -> None:
    with pytest.raises(ConfigError, match=r"task.teacher: distillation needs the trained teacher run"):
        deepatlas.train("quickstart", tiny_recipe(**{"task.name": "distillation"}), progress=False)
    with pytest.raises(ConfigError, match=r"task.teacher: run 'nosuch': not found"):
        deepatlas.train("quickstart", tiny_recipe(**{"task.name": "distillation", "task.teacher": "nosuch"}), progress=False)
