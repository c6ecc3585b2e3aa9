"""Distributional regression: choose a distribution, predict its parameters, minimise the NLL.

The recipe of Prince (2023, *Understanding Deep Learning*, section 5.2; after Nix & Weigend 1994):
pick Pr(y | theta) over the target's domain (:mod:`deepatlas.nn.distributions`: normal with a
scale per row, the homoscedastic ``normal-fixed`` that is least squares, Laplace, Student's t,
Poisson, negative binomial, gamma, log-normal, beta, a Gaussian mixture, Bernoulli, categorical),
let the network predict theta = f(x; phi) through the family's link, and minimise
L(phi) = -1/n sum_i log Pr(y_i | f(x_i; phi)) (eq. 5.6).

``task.loss`` other than ``nll`` trains only the distribution's location (mean; the loc of the
location-scale families) with a point loss on standardised residuals r = (y - loc) / s (s the
training target's standard deviation, so ``huber_delta``, ``tukey_c`` and ``barron_scale`` are in
standard deviations): ``mse`` r^2, ``mae`` |r|, ``huber``, ``tukey``, ``barron``
(:mod:`deepatlas.nn.losses`). The other parameters then keep their initial value (the marginal
spread), and the probabilistic metrics say so.

``normal-fixed`` trains its location with the Gaussian NLL at the fixed scale s (least squares up
to constants); its one global scale is then fitted after training, on the best weights, as the
maximum-likelihood value sigma^2 = 1/n sum_i (y_i - loc_i)^2 over the training rows, the point where
a learned global log-scale parameter's gradient vanishes; it is saved with the run
(``calibration.safetensors``).

Metrics (:mod:`deepatlas.metrics.regression`): loss, NLL per row in nats in the target's units,
RMSE, MAE and R^2 of the predictive mean, CRPS, and the coverage and width of the central 90%
interval. Predictions: the mean and standard deviation per row, the distribution itself, its
quantiles (:func:`deepatlas.nn.distributions.quantiles`) and central intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import torch
from torch import distributions as D
from torch import nn

from ..errors import ConfigError
from ..metrics.regression import DIRECTIONS, crps, regression_metrics, regression_stats
from ..nn import losses
from ..nn.distributions import FAMILIES, Head, TargetScale, quantiles
from ..registry import TASKS
from ..schema import option
from .base import StepOutput, Task


@dataclass(frozen=True)
class RegressionConfig:
    distribution: Literal[
        "normal", "normal-fixed", "laplace", "student-t", "poisson", "negative-binomial", "gamma", "log-normal", "beta",
        "gaussian-mixture", "bernoulli", "categorical",
    ] = option("normal", "the predictive distribution of the target (its support must hold the target)")
    loss: Literal["nll", "mse", "mae", "huber", "tukey", "barron"] = option(
        "nll", "nll: the distribution's negative log-likelihood; the others train only its location on standardised residuals",
    )
    df: Optional[float] = option(None, "student-t: a fixed degrees of freedom (null: learnt per row, > 2)", low=0.1)
    components: int = option(3, "gaussian-mixture: the number of components K", low=1)
    huber_delta: float = option(1.0, "huber: the threshold delta, in target standard deviations", low=1e-6)
    tukey_c: float = option(4.685, "tukey: the cut-off c, in target standard deviations", low=1e-6)
    barron_alpha: float = option(1.0, "barron: the shape alpha (2: L2, 1: pseudo-Huber, 0: Cauchy, -.inf: Welsch)")
    barron_scale: float = option(1.0, "barron: the scale c, in target standard deviations", low=1e-6)
    coverage: float = option(0.9, "nominal coverage of the 'lower'/'upper' interval that predict returns", low=0.01, high=0.99)


class Regression(Task):
    monitor = ("nll", "min")
    low_precision_ok = False  # float32 likelihoods whatever the speed (Task.low_precision_ok)
    directions: ClassVar[Mapping[str, str]] = DIRECTIONS
    capabilities = frozenset({"predict", "distribution", "quantiles", "interval"})
    predicts = "values"
    data_kind = "tabular"

    def __init__(self, config: RegressionConfig, meta: Mapping[str, Any]) -> None:
        super().__init__(config, meta)
        if config.distribution not in FAMILIES:
            raise ConfigError(f"task.distribution: unknown family {config.distribution!r}.")
        options: dict[str, Any] = {"df": config.df, "components": config.components}
        self.scale = TargetScale.from_meta(meta)
        self.head = Head(config.distribution, self.scale, **options)
        if meta:
            self.head.check_meta()
        self.calibrates = config.distribution == "normal-fixed"  # type: ignore[misc]  # its global scale, after training

    def model_meta(self) -> dict[str, Any]:
        """The network outputs the family's raw parameters."""
        return {"num_outputs": self.head.num_outputs}

    # ----------------------------------------------------------------- the distribution of a batch

    def distribution(self, model: nn.Module, inputs: Any) -> D.Distribution:
        return self.head(model(inputs))

    @staticmethod
    def location(dist: D.Distribution) -> torch.Tensor:
        """The parameter a point loss trains: the loc of a location-scale family, else the mean."""
        if isinstance(dist, (D.Normal, D.Laplace, D.StudentT)):
            return dist.loc
        return mean_of(dist)

    def point_loss(self, dist: D.Distribution, y: torch.Tensor) -> torch.Tensor:
        """(B,) the training loss of each row."""
        c = self.config
        if c.loss == "nll":
            return -dist.log_prob(y)
        r = (y - self.location(dist)) / self.scale.std
        if c.loss == "mse":
            return r**2
        if c.loss == "mae":
            return r.abs()
        if c.loss == "huber":
            return losses.huber(r, c.huber_delta)
        if c.loss == "tukey":
            return losses.tukey(r, c.tukey_c)
        return losses.barron(r, c.barron_alpha, c.barron_scale)

    # ----------------------------------------------------------------- training and validation

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        x, y = batch
        loss = self.point_loss(self.distribution(model, x), y).mean()
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        self.head.check(y)
        return distribution_stats(self.distribution(model, x), y, self.point_loss, self.head.family.discrete)

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return regression_metrics(totals)

    # ----------------------------------------------------------------- normal-fixed: its global scale

    def calibrate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """sigma = sqrt(mean squared residual) over the training rows (the MLE of one global scale)."""
        se, n = torch.zeros((), dtype=torch.float64), 0
        for x, y in data.eval_batches("train", device):
            loc = self.location(self.distribution(model, x))
            se += ((y.double() - loc.double()) ** 2).sum().cpu()
            n += len(y)
        return {"scale": (se / max(n, 1)).sqrt().clamp_min(1e-12).float()}

    def load_calibration(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_calibration(state)
        if "scale" in state:
            self.head.options["fixed_scale"] = float(state["scale"])

    # ----------------------------------------------------------------- predictions

    @torch.no_grad()
    def figures(self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Any = None) -> list[Path]:
        """Observed against predicted, and each row's interval (the first evaluation batch of ``split``)."""
        from ..report.statistics import interval_figures

        return interval_figures(self, model, batch, folder, split, f"{self.config.coverage:.0%} predictive interval")

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """``prediction`` (the predictive mean), ``std``, and ``lower``/``upper`` at ``task.coverage``."""
        dist = self.distribution(model, inputs)
        a = (1 - self.config.coverage) / 2
        bounds = quantiles(dist, [a, 1 - a], self.head.family.discrete).float()
        return {"prediction": mean_of(dist).float(), "std": std_of(dist).float(), "lower": bounds[:, 0], "upper": bounds[:, 1]}

    @torch.no_grad()
    def predict_distribution(self, model: nn.Module, inputs: Any) -> D.Distribution:
        return self.distribution(model, inputs)

    @torch.no_grad()
    def predict_quantiles(self, model: nn.Module, inputs: Any, levels: Sequence[float]) -> torch.Tensor:
        return quantiles(self.distribution(model, inputs), levels, self.head.family.discrete).float()

    @torch.no_grad()
    def predict_interval(self, model: nn.Module, inputs: Any, coverage: float) -> tuple[torch.Tensor, torch.Tensor]:
        a = (1 - coverage) / 2
        bounds = self.predict_quantiles(model, inputs, [a, 1 - a])
        return bounds[:, 0], bounds[:, 1]


def mean_of(dist: D.Distribution) -> torch.Tensor:
    if isinstance(dist, D.Categorical):  # torch gives NaN: the classes are 0..K-1 here
        return (dist.probs * torch.arange(dist.probs.shape[-1], device=dist.probs.device)).sum(-1)
    return dist.mean


def std_of(dist: D.Distribution) -> torch.Tensor:
    if isinstance(dist, D.Categorical):
        k = torch.arange(dist.probs.shape[-1], device=dist.probs.device)
        return ((dist.probs * k**2).sum(-1) - mean_of(dist) ** 2).clamp_min(0).sqrt()
    return dist.stddev


def distribution_stats(dist: D.Distribution, y: torch.Tensor, loss_fn: Any, discrete: bool) -> dict[str, torch.Tensor]:
    """Summable regression statistics of a batch's predictive distribution (also used by the GLM baseline)."""
    bounds = quantiles(dist, [0.05, 0.95], discrete)
    return regression_stats(mean_of(dist), y, -dist.log_prob(y), crps(dist, y), bounds[:, 0], bounds[:, 1], loss_fn(dist, y).sum())


TASKS.register(
    "regression", Regression, RegressionConfig(), family="regression",
    doc="distributional regression: a family's NLL (normal, t, Poisson, NB, gamma, beta, mixtures...); NLL, RMSE, CRPS, 90% intervals",
)
