"""Learning-rate schedules against torch.optim.lr_scheduler as the oracle."""

from __future__ import annotations

import pytest
import torch

from deepatlas.config import ScheduleConfig
from deepatlas.engine.schedule import LRSchedule


def torch_lrs(make_scheduler, steps: int, lr: float = 0.1) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def ours(steps: int, lr: float = 0.1, steps_per_epoch: int = 1, **kw: object) -> list[float]:
    s = LRSchedule(ScheduleConfig(**kw), lr, steps_per_epoch, steps)
    return [s.lr(i) for i in range(steps)]


def test_step_matches_steplr() -> None:
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 30)
    assert ours(30, name="step", step_size=7, gamma=0.5, interval="epoch") == pytest.approx(expected)


def test_multistep_matches_multisteplr() -> None:
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[5, 12], gamma=0.2), 20)
    assert ours(20, name="multi-step", milestones=(5, 12), gamma=0.2, interval="epoch") == pytest.approx(expected)


def test_cosine_matches_cosineannealinglr() -> None:
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=1e-3), 50)
    assert ours(50, name="cosine", min_lr=1e-3, unit="step") == pytest.approx(expected)


def test_one_cycle_matches_onecyclelr() -> None:
    expected = torch_lrs(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.1, total_steps=100, pct_start=0.3, anneal_strategy="cos", cycle_momentum=False
        ),
        100,
    )
    assert ours(100, name="one-cycle", unit="step") == pytest.approx(expected, rel=1e-9)


def test_epoch_interval_changes_only_at_epoch_ends() -> None:
    lrs = ours(40, steps_per_epoch=10, name="cosine", interval="epoch")
    assert len(set(lrs[0:10])) == 1 and len(set(lrs[10:20])) == 1 and lrs[10] < lrs[0]


def test_warmup_cosine_rises_linearly_then_decays_to_min() -> None:
    lrs = ours(100, name="warmup-cosine", warmup=10, unit="step", min_lr=0.0)
    rise = lrs[:10]
    assert rise == sorted(rise) and rise[0] > 0 and rise[-1] < 0.1
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[-1] < 0.001 and lrs[10:] == sorted(lrs[10:], reverse=True)


def test_warmup_in_epochs_uses_steps_per_epoch() -> None:
    lrs = ours(50, steps_per_epoch=10, name="constant", warmup=2)
    assert lrs[19] < 0.1 and lrs[20] == 0.1


def test_apply_sets_every_group() -> None:
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=1.0)
    LRSchedule(ScheduleConfig(name="step", step_size=1, gamma=0.5, unit="step"), 1.0, 1, 10).apply([opt], 3)
    assert [g["lr"] for g in opt.param_groups] == [0.125, 0.125]


def test_inverse_sqrt_is_the_papers_schedule() -> None:
    # Vaswani et al. eq. 3: lrate = d^-0.5 min(n^-0.5, n warmup^-1.5), n = step + 1; peak at n = warmup
    d, warmup = 512, 40
    peak = d**-0.5 * warmup**-0.5
    lrs = ours(200, lr=peak, name="inverse-sqrt", warmup=warmup - 1, unit="step")
    paper = [d**-0.5 * min(n**-0.5, n * warmup**-1.5) for n in range(1, 201)]
    assert lrs == pytest.approx(paper, rel=1e-9)
