"""Survival analysis: DeepSurv, discrete-time logistic hazards and DeepHit on (duration, event) targets.

A batch is ``(TabularBatch, y)`` with y (B, 2) = [duration T, event d].

- ``deepsurv`` (Katzman, Shaham, Cloninger, Bates, Jiang & Kluger 2018): the network outputs a
  log-risk f(x); the loss is the negative Cox partial log-likelihood (Cox 1972) per event,
  -1/N_E sum_g [sum_{i in D_g} f_i - sum_{l=0}^{d_g-1} log(R_g - l/d_g E_g)] with R_g = sum_{T_j >= t_g} e^{f_j},
  E_g = sum_{i in D_g} e^{f_i} (Efron 1977; Breslow 1974 drops the l/d_g E_g correction). After
  training the Breslow estimator H0(t) = sum_{t_g <= t} d_g / R_g is fitted on the training split,
  and S(t | x) = exp(-H0(t) e^{f(x)}).
- ``logistic-hazard`` (Gensheimer & Narasimhan 2019; Kvamme & Borgan 2019): time is cut at
  ``task.bins`` quantiles of the training event times, c_0 = 0 < c_1 < ... < c_K; the network
  outputs a logit of the hazard h_k = P(T in (c_{k-1}, c_k] | T > c_{k-1}) per interval; the loss is the
  discrete-time likelihood, a binary cross-entropy over the intervals each subject was at risk in
  (an event in interval j: 0 for k < j, 1 at j; a censoring in interval j: 0 for k < j, as if at its
  start); S(c_m) = prod_{k <= m} (1 - h_k).
- ``deephit`` (Lee, Zame, Yoon & van der Schaar 2018, single risk): a softmax over the same K
  intervals and one "after the grid" bin, p_k; the loss is alpha L_1 + (1 - alpha) L_2 with L_1 the
  censoring-aware negative log-likelihood (an event in interval j: -log p_j; a censoring in j:
  -log sum_{k >= j} p_k) and L_2 the ranking loss (eq. 3): the mean over comparable pairs (d_i = 1,
  T_i < T_j) of exp(-(F_i(T_i) - F_j(T_i)) / sigma), F the cumulative incidence.

Validation keeps each row's outputs (``rows/`` keys) and reports the loss of the whole split (the
Cox likelihood does not split into batches), Harrell's C (the monitor) and, once the task is calibrated (the test
evaluation), Uno's C truncated at the 90th percentile of training event times and the integrated
Brier score over the training event-time deciles 1..9 with the Kaplan-Meier censoring distribution
of the training split (see :mod:`deepatlas.metrics.survival`). A discrete model's risk score is minus
its restricted mean survival time over the grid.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from ..metrics.survival import censoring_survival, harrell_c, integrated_brier_score, uno_c
from ..registry import TASKS
from ..schema import option
from .base import StepOutput, Task


def cox_partial_nll(log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, ties: str = "efron") -> torch.Tensor:
    """Negative Cox partial log-likelihood per event (sum over events / number of events); 0 without events.

    Static shapes throughout (masks, not boolean indexing), so that the FLOP counter can trace it on the meta device.
    """
    order = torch.argsort(time.reshape(-1), descending=True, stable=True)
    eta, t = log_risk.reshape(-1)[order], time.reshape(-1)[order]
    e = (event.reshape(-1)[order] > 0).to(eta.dtype)
    log_cum = torch.logcumsumexp(eta, 0)  # log sum over rows so far, i.e. over T_j >= T_i
    new = torch.cat([torch.ones_like(t[:1], dtype=torch.bool), t[1:] != t[:-1]])
    gid = torch.cumsum(new.long(), 0) - 1  # tied times share a group; groups are contiguous rows
    # log R_g: the cumulative log-sum-exp at the group's last row (its largest value)
    log_r = torch.full_like(eta, -torch.inf).scatter_reduce(0, gid, log_cum, reduce="amax")[gid]
    terms = e * log_r
    if ties == "efron":
        d = torch.zeros_like(eta).index_add(0, gid, e)
        ratio = torch.zeros_like(eta).index_add(0, gid, e * torch.exp(eta - log_r))[gid]  # E_g / R_g in (0, 1]
        rank = torch.cumsum(e, 0) - e - (torch.cumsum(d, 0) - d)[gid]  # l: events of the group before this one
        terms = terms + e * torch.log1p(-e * rank / d[gid].clamp_min(1) * ratio)
    return (terms.sum() - (e * eta).sum()) / e.sum().clamp_min(1)


def breslow(log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(unique event times, H0 at each): H0(t) = sum_{t_g <= t} d_g / sum_{T_j >= t_g} e^{f_j} (Breslow 1974)."""
    eta, t, e = log_risk.reshape(-1).double(), time.reshape(-1).double(), event.reshape(-1) > 0
    unique, group = torch.unique(t, return_inverse=True)
    shift = eta.max()
    total = torch.zeros(len(unique), dtype=torch.float64).index_add(0, group, torch.exp(eta - shift))
    at_risk = torch.flip(torch.cumsum(torch.flip(total, [0]), 0), [0])
    deaths = torch.bincount(group[e], minlength=len(unique)).double()
    hazard = deaths / at_risk * torch.exp(-shift)
    keep = deaths > 0
    return unique[keep], torch.cumsum(hazard, 0)[keep]


def step_lookup(knots: torch.Tensor, values: torch.Tensor, times: torch.Tensor, before: float = 0.0) -> torch.Tensor:
    """values (..., K) at the last knot <= each time (``before`` left of the first): (..., T), right-continuous."""
    index = torch.searchsorted(knots.to(times.dtype).contiguous(), times.contiguous(), right=True)
    padded = torch.cat([values.new_full((*values.shape[:-1], 1), before), values], dim=-1)
    return padded[..., index]


def ibs_grid(meta: Mapping[str, Any], test_time: np.ndarray) -> np.ndarray:
    """The integrated Brier score's times: training event-time deciles 1..9 inside the test follow-up."""
    grid = np.asarray(meta["event_time_quantiles"], dtype=np.float64)[10:91:10]
    return np.unique(grid[(grid >= test_time.min()) & (grid < test_time.max())])


def uno_tau(meta: Mapping[str, Any]) -> float:
    """The truncation time of Uno's C: the 90th percentile of training event times."""
    return float(meta["event_time_quantiles"][90])


@dataclass(frozen=True)
class DeepSurvConfig:
    ties: Literal["efron", "breslow"] = option("efron", "handling of tied event times in the partial likelihood")


@dataclass(frozen=True)
class DiscreteConfig:
    bins: int = option(20, "intervals of the time grid, cut at quantiles of the training event times", low=1)


@dataclass(frozen=True)
class DeepHitConfig(DiscreteConfig):
    alpha: float = option(0.2, "weight of the log-likelihood against the ranking loss (pycox's default)", low=0.0, high=1.0)
    sigma: float = option(0.1, "scale of the ranking loss's exp(-(F_i - F_j) / sigma) (pycox's default)", low=1e-6)


class SurvivalTask(Task):
    """Shared parts: whole-split metrics from per-row outputs, the training censoring distribution."""

    monitor = ("c_index", "max")
    low_precision_ok = False  # float32 likelihoods whatever the speed (Task.low_precision_ok)
    directions: ClassVar[Mapping[str, str]] = {"loss": "min", "c_index": "max", "uno_c": "max", "ibs": "min"}
    capabilities = frozenset({"predict", "survival"})
    predicts = "values"
    data_kind = "survival"
    calibrates = True

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        if meta.get("target_type") not in (None, "survival") or (meta and "event_time_quantiles" not in meta):
            raise DataError("data: a survival task needs a survival table (data.target = the duration, data.event = the event flag).")

    @abstractmethod
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of raw outputs (B, K) and targets (B, 2) = [duration, event]."""

    @abstractmethod
    def survival_from_outputs(self, out: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, len(times)) survival probabilities from raw outputs."""

    @abstractmethod
    def risk(self, out: torch.Tensor) -> torch.Tensor:
        """(B,) risk scores (higher: earlier events) from raw outputs."""

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        x, y = batch
        loss = self.loss(model(x).float(), y.float())
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"rows/out": model(x).float(), "rows/y": y.float()}

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        out, y = totals["rows/out"], totals["rows/y"]
        time, event = y[:, 0].numpy(), y[:, 1].numpy() > 0
        risk = self.risk(out).double().numpy()
        metrics = {"loss": float(self.loss(out, y)), "c_index": harrell_c(time, event, risk)}
        state = self.calibration_state()
        if "censor_times" in state:
            train_t, train_g = state["train_time"].numpy(), state["train_event"].numpy() > 0
            metrics["uno_c"] = uno_c(train_t, train_g, time, event, risk, tau=uno_tau(self.meta))
            grid = ibs_grid(self.meta, time)
            surv = self.survival_from_outputs(out, torch.as_tensor(grid)).double().numpy()
            metrics["ibs"] = integrated_brier_score(train_t, train_g, time, event, surv, grid)
        return metrics

    def calibrate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """The training rows' (time, event), from which the IPCW metrics estimate the censoring distribution."""
        y = data.split("train").targets
        g_times, g = censoring_survival(y[:, 0].numpy(), y[:, 1].numpy() > 0)
        return {"train_time": y[:, 0].double(), "train_event": y[:, 1].double(),
                "censor_times": torch.as_tensor(g_times), "censor_survival": torch.as_tensor(g)}

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``prediction``: the risk score (higher = earlier event)."""
        return {"prediction": self.risk(model(inputs).float())}

    @torch.no_grad()
    def predict_survival(self, model: nn.Module, inputs: Any, times: torch.Tensor) -> torch.Tensor:
        return self.survival_from_outputs(model(inputs).float(), times)

    @torch.no_grad()
    def figures(self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Any = None) -> list[Path]:
        """Predicted survival of each third of predicted risk against its Kaplan-Meier curve."""
        from ..report.statistics import survival_figures

        return survival_figures(self, model, batch, folder, split)


class DeepSurv(SurvivalTask):
    def model_meta(self) -> dict[str, Any]:
        return {"num_outputs": 1}

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cox_partial_nll(out[:, 0], y[:, 0], y[:, 1], self.config.ties)

    def risk(self, out: torch.Tensor) -> torch.Tensor:
        return out[:, 0]

    def calibrate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """The censoring distribution and the Breslow baseline cumulative hazard of the training split."""
        train = data.split("train")
        log_risk = torch.cat([model(x).float()[:, 0].cpu() for x, _ in _chunks(train, device)])
        times, cumhaz = breslow(log_risk, train.targets[:, 0], train.targets[:, 1])
        return {**super().calibrate(model, data, device), "baseline_times": times, "baseline_cumhaz": cumhaz}

    def load_calibration(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_calibration(state)
        self.baseline_times = state["baseline_times"].detach().cpu().double()
        self.baseline_cumhaz = state["baseline_cumhaz"].detach().cpu().double()

    def survival_from_outputs(self, out: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "baseline_cumhaz"):
            raise DataError("deepsurv: no baseline hazard yet (it is fitted after training; load the run's best checkpoint).")
        h0 = step_lookup(self.baseline_times, self.baseline_cumhaz, times.double().cpu())  # (T,), 0 before the first event
        return torch.exp(-h0[None] * torch.exp(out[:, :1].double().cpu()))


def _chunks(split: Any, device: torch.device, size: int = 4096) -> Any:
    for lo in range(0, len(split), size):
        yield split.inputs[lo : lo + size].to(device), None


class DiscreteSurvival(SurvivalTask):
    """The time grid of the discrete-time models: cuts c_1..c_K at training event-time quantiles."""

    after_bin: ClassVar[int] = 0  # DeepHit adds a bin for events after the grid

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        grid = np.asarray(meta.get("event_time_quantiles") or [0.0, 1.0], dtype=np.float64)
        levels = np.linspace(0, 100, config.bins + 1)[1:]
        cuts = np.unique(np.interp(levels, np.arange(len(grid)) * 100 / (len(grid) - 1), grid))
        self.cuts = torch.as_tensor(cuts[cuts > 0] if (cuts > 0).any() else cuts)  # (K,) interval right ends
        self.widths = torch.diff(torch.cat([self.cuts.new_zeros(1), self.cuts]))

    def model_meta(self) -> dict[str, Any]:
        return {"num_outputs": len(self.cuts) + self.after_bin}

    def bin_index(self, time: torch.Tensor) -> torch.Tensor:
        """0-based interval of each time, K for a time after the last cut."""
        return torch.searchsorted(self.cuts.to(time.device, time.dtype).contiguous(), time.contiguous(), right=False)

    @abstractmethod
    def grid_survival(self, out: torch.Tensor) -> torch.Tensor:
        """(B, K) survival at the end of each interval, S(c_1..c_K)."""

    def survival_from_outputs(self, out: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        surv = self.grid_survival(out.double().cpu())
        return step_lookup(self.cuts.double(), surv, times.double().cpu(), before=1.0)

    def risk(self, out: torch.Tensor) -> torch.Tensor:
        """Minus the restricted mean survival time over the grid, sum_k S(c_{k-1}) (c_k - c_{k-1})."""
        surv = self.grid_survival(out.double())
        before = torch.cat([surv.new_ones(len(surv), 1), surv[:, :-1]], dim=1)
        return -(before * self.widths.to(surv.device)[None]).sum(1)


class LogisticHazard(DiscreteSurvival):
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = out.shape[1]
        j, event = self.bin_index(y[:, 0]), y[:, 1] > 0
        steps = torch.arange(k, device=out.device)[None]
        at_risk = (steps < j[:, None]) | ((steps == j[:, None]) & event[:, None])
        target = ((steps == j[:, None]) & event[:, None]).to(out.dtype)
        bce = F.binary_cross_entropy_with_logits(out, target, reduction="none")
        return (bce * at_risk).sum() / len(out)

    def grid_survival(self, out: torch.Tensor) -> torch.Tensor:
        return torch.cumprod(1 - torch.sigmoid(out), dim=1)


class DeepHit(DiscreteSurvival):
    after_bin = 1

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(out, dim=1)  # (B, K + 1)
        j, event = self.bin_index(y[:, 0]), y[:, 1] > 0
        log_tail = torch.logcumsumexp(log_p.flip(1), dim=1).flip(1)  # log sum_{k >= j} p_k
        rows = torch.arange(len(out), device=out.device)
        nll = -torch.where(event, log_p[rows, j], log_tail[rows, j]).mean()
        cif = torch.cumsum(log_p.exp(), dim=1)  # F(c_k) at the end of each bin
        at = cif[:, j].T  # at[i, m] = F_m(T_i), the cumulative incidence of m at the end of T_i's bin
        own = at.diagonal()  # F_i(T_i)
        comparable = event[:, None] & (y[:, 0][:, None] < y[:, 0][None])
        rank = (torch.exp(-(own[:, None] - at) / self.config.sigma) * comparable).sum() / comparable.sum().clamp_min(1)
        return self.config.alpha * nll + (1 - self.config.alpha) * rank

    def grid_survival(self, out: torch.Tensor) -> torch.Tensor:
        return 1 - torch.cumsum(torch.softmax(out, dim=1), dim=1)[:, :-1]


TASKS.register("deepsurv", DeepSurv, DeepSurvConfig(), family="survival",
               doc="DeepSurv: Cox partial likelihood (Efron/Breslow ties), Breslow baseline hazard; C-index, Uno's C, IBS")
TASKS.register("logistic-hazard", LogisticHazard, DiscreteConfig(), family="survival",
               doc="discrete-time logistic hazards on a quantile time grid (Gensheimer & Narasimhan 2019)")
TASKS.register("deephit", DeepHit, DeepHitConfig(), family="survival",
               doc="DeepHit: softmax over a time grid, likelihood + ranking loss (Lee et al. 2018)")
