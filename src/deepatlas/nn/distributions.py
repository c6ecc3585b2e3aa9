"""Distribution heads: raw network outputs -> the parameters of a ``torch.distributions`` object.

The maximum-likelihood recipe for a loss (Nix & Weigend 1994; Bishop 1994; Prince 2023,
*Understanding Deep Learning*, section 5.2): choose a distribution Pr(y | theta) over the domain
of the target, let the network predict theta = f(x; phi), and minimise the negative
log-likelihood L(phi) = -sum_i log Pr(y_i | f(x_i; phi)) (Prince eq. 5.6).

Each :class:`Head` says how many raw outputs it needs per target and maps them through a link
function. Every link carries an offset computed from the training target (``target_mean`` m,
``target_std`` s of the data meta) so that a freshly initialised network (raw outputs near 0)
predicts about the marginal distribution of y, and training starts from a sensible place.
``isp(v) = log(exp(v) - 1)`` is the inverse softplus, so ``softplus(0 + isp(v)) = v``.

========================  ====  ====================================================================
family                    raw   link (r = raw outputs)
========================  ====  ====================================================================
normal                    2     loc = m + s r0, scale = s softplus(r1 + isp(1))
normal-fixed              1     loc = m + s r0; one global scale (the MLE sqrt(mean residual^2) on
                                the training rows, set by the task after training; s before)
laplace                   2     loc = m + s r0, scale = (s / sqrt 2) softplus(r1 + isp(1))
student-t                 3|2   loc, scale as normal; df = 2 + softplus(r2 + isp(8)) (> 2: finite
                                variance), or the fixed ``df``
poisson                   1     rate = exp(log m + r0) (log link)
negative-binomial         2     mean mu = exp(log m + r0), dispersion a = softplus(r1 + isp(a0)),
                                Var = mu + a mu^2 (NB2); torch's NegativeBinomial(total_count = 1/a,
                                logits = log(a mu)) has mean total_count exp(logits) = mu;
                                a0 = max((s^2 - m) / m^2, 0.01) (moment estimate)
gamma                     2     mean mu = exp(log m + r0), concentration k = softplus(r1 + isp(m^2/s^2)),
                                rate = k / mu
log-normal                2     loc = l + v r0, scale = v softplus(r1 + isp(1)) on log y, with the
                                moment match v^2 = log(1 + s^2/m^2), l = log m - v^2/2
beta                      2     mean mu = sigmoid(logit m + r0), precision p = softplus(r1 + isp(p0)),
                                Beta(mu p, (1 - mu) p); p0 = max(m (1 - m) / s^2 - 1, 0.5)
gaussian-mixture          3K    weights softmax(r[:K]), loc_k = m + s r, scale_k = s softplus(r + isp(1))
                                (MixtureSameFamily; random head weights break the symmetry)
bernoulli                 1     logits = logit m + r0 (a 0/1 target)
categorical               K     logits = r (a target in 0..K-1, K = target_max + 1)
========================  ====  ====================================================================

A target outside a family's support (a negative count, a proportion of 1, a zero for a gamma) is a
:class:`~deepatlas.errors.DataError` naming ``task.distribution`` and a family that fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch.distributions.utils import broadcast_all

from ..errors import ConfigError, DataError, one_of, suggest


def isp(value: float) -> float:
    """Inverse softplus: softplus(isp(v)) = v, for v > 0."""
    return float(value + math.log(-math.expm1(-value)))


@dataclass(frozen=True)
class TargetScale:
    """The training target's statistics that set the links' offsets (from the data meta)."""

    mean: float = 0.0
    std: float = 1.0
    min: float = -math.inf
    max: float = math.inf
    integer: bool = False

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> TargetScale:
        return cls(
            float(meta.get("target_mean", 0.0)), max(float(meta.get("target_std", 1.0)), 1e-12),
            float(meta.get("target_min", -math.inf)), float(meta.get("target_max", math.inf)),
            bool(meta.get("target_integer", False)),
        )


@dataclass(frozen=True)
class Family:
    """A distribution family: its raw outputs per target, its link and its support."""

    name: str
    outputs: Callable[[TargetScale, Mapping[str, Any]], int]
    build: Callable[[torch.Tensor, TargetScale, Mapping[str, Any]], D.Distribution]
    support: str  # "real", "positive", "count", "unit", "binary", "class"
    doc: str = ""
    discrete: bool = False

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled by name (its functions are lambdas): a pickled estimator or Predictor holds a family."""
        return (_family, (self.name,))


def _family(name: str) -> Family:
    return FAMILIES[name]


def _softplus(r: torch.Tensor, at_zero: float) -> torch.Tensor:
    return F.softplus(r + isp(at_zero))


def _normal(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    return D.Normal(s.mean + s.std * r[:, 0], s.std * _softplus(r[:, 1], 1.0), validate_args=False)


def _normal_fixed(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    scale = o.get("fixed_scale")
    sigma = torch.as_tensor(s.std if scale is None else scale, dtype=r.dtype, device=r.device)
    loc = s.mean + s.std * r[:, 0]
    return D.Normal(loc, sigma.expand_as(loc), validate_args=False)


def _laplace(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    return D.Laplace(s.mean + s.std * r[:, 0], s.std / math.sqrt(2.0) * _softplus(r[:, 1], 1.0), validate_args=False)


class StudentT(D.StudentT):
    """torch's StudentT whose inner Chi2 (its sampler) skips the argument check: that check is a host
    sync every training step and cannot run on the meta device (where FLOPs are counted)."""

    def __init__(self, df: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> None:
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        self._chi2 = D.Chi2(self.df, validate_args=False)
        D.Distribution.__init__(self, self.df.size(), validate_args=False)


def _student_t(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    df = o.get("df")
    dof = 2.0 + _softplus(r[:, 2], 8.0) if df is None else torch.full_like(r[:, 0], float(df))
    return StudentT(dof, s.mean + s.std * r[:, 0], s.std * _softplus(r[:, 1], 1.0))


def _log_mean(s: TargetScale, family: str) -> float:
    if s.mean <= 0:
        raise DataError(f"data.target: the training mean is {s.mean:g}; task.distribution={family} needs a positive mean (a target that is not all zeros).")
    return math.log(s.mean)


def _poisson(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    return D.Poisson(torch.exp(_log_mean(s, "poisson") + r[:, 0]), validate_args=False)


def nb_dispersion0(s: TargetScale) -> float:
    return max((s.std**2 - s.mean) / s.mean**2, 0.01) if s.mean > 0 else 1.0


def negative_binomial(mean: torch.Tensor, alpha: torch.Tensor) -> D.NegativeBinomial:
    """NB2 with mean ``mean`` and Var = mean + alpha mean^2, as torch's NegativeBinomial(total_count, logits)."""
    return D.NegativeBinomial(total_count=1.0 / alpha, logits=torch.log(alpha * mean), validate_args=False)


def _negative_binomial(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    mean = torch.exp(_log_mean(s, "negative-binomial") + r[:, 0])
    return negative_binomial(mean, _softplus(r[:, 1], nb_dispersion0(s)))


def _gamma(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    mean = torch.exp(_log_mean(s, "gamma") + r[:, 0])
    shape = _softplus(r[:, 1], s.mean**2 / s.std**2)
    return D.Gamma(shape, shape / mean, validate_args=False)


def _log_normal(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    v = math.sqrt(math.log1p(s.std**2 / s.mean**2)) if s.mean > 0 else 1.0
    centre = _log_mean(s, "log-normal") - v**2 / 2
    return D.LogNormal(centre + v * r[:, 0], v * _softplus(r[:, 1], 1.0), validate_args=False)


def _beta(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    m = min(max(s.mean, 1e-6), 1 - 1e-6)
    mean = torch.sigmoid(math.log(m / (1 - m)) + r[:, 0])
    precision = _softplus(r[:, 1], max(m * (1 - m) / s.std**2 - 1, 0.5))
    return D.Beta(mean * precision, (1 - mean) * precision, validate_args=False)


def _mixture(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    k = int(o.get("components", 3))
    logits, loc, scale = r[:, :k], r[:, k: 2 * k], r[:, 2 * k: 3 * k]  # (B, K) each
    components = D.Normal(s.mean + s.std * loc, s.std * _softplus(scale, 1.0), validate_args=False)
    return D.MixtureSameFamily(D.Categorical(logits=logits, validate_args=False), components, validate_args=False)


def _bernoulli(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    m = min(max(s.mean, 1e-6), 1 - 1e-6)
    return D.Bernoulli(logits=math.log(m / (1 - m)) + r[:, 0], validate_args=False)


def _categorical(r: torch.Tensor, s: TargetScale, o: Mapping[str, Any]) -> D.Distribution:
    return D.Categorical(logits=r, validate_args=False)


def _classes(s: TargetScale) -> int:
    return int(s.max) + 1 if math.isfinite(s.max) else 2


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("normal", lambda s, o: 2, _normal, "real", "heteroscedastic normal: loc and scale per row"),
    Family("normal-fixed", lambda s, o: 1, _normal_fixed, "real", "homoscedastic normal: loc per row, one global scale (MSE)"),
    Family("laplace", lambda s, o: 2, _laplace, "real", "Laplace: loc (a conditional median) and scale (robust)"),
    Family("student-t", lambda s, o: 2 if o.get("df") is not None else 3, _student_t, "real", "Student's t: loc, scale, df > 2 (robust)"),
    Family("poisson", lambda s, o: 1, _poisson, "count", "Poisson counts, log link", discrete=True),
    Family("negative-binomial", lambda s, o: 2, _negative_binomial, "count", "NB2 counts: log-link mean and a dispersion (overdispersed)", discrete=True),
    Family("gamma", lambda s, o: 2, _gamma, "positive", "gamma: log-link mean and a shape (positive magnitudes)"),
    Family("log-normal", lambda s, o: 2, _log_normal, "positive", "log-normal: normal on log y (positive, skewed)"),
    Family("beta", lambda s, o: 2, _beta, "unit", "beta: logit-link mean and a precision (proportions in (0, 1))"),
    Family("gaussian-mixture", lambda s, o: 3 * int(o.get("components", 3)), _mixture, "real", "mixture of K normals (multimodal)"),
    Family("bernoulli", lambda s, o: 1, _bernoulli, "binary", "Bernoulli: a 0/1 target, logit link", discrete=True),
    Family("categorical", lambda s, o: _classes(s), _categorical, "class", "categorical over 0..K-1 (K = target_max + 1)", discrete=True),
)}

#: what each support needs, and a family to suggest for a target outside another's
_SUPPORT_NEEDS = {
    "count": "non-negative integers", "positive": "positive values", "unit": "values strictly between 0 and 1",
    "binary": "only 0 and 1", "class": "integers 0..K-1",
}


def in_support(support: str, y: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which values lie in ``support``."""
    finite = torch.isfinite(y)
    if support == "real":
        return finite
    if support == "positive":
        return finite & (y > 0)
    if support == "unit":
        return finite & (y > 0) & (y < 1)
    integer = finite & (y == torch.round(y))
    if support == "binary":
        return integer & ((y == 0) | (y == 1))
    return integer & (y >= 0)  # count, class


def fitting_family(y_min: float, y_max: float, integer: bool) -> str:
    """A family whose support holds targets in [y_min, y_max]."""
    if integer and y_min >= 0:
        return "negative-binomial" if y_max > 1 else "bernoulli"
    if y_min > 0 and y_max < 1:
        return "beta"
    if y_min > 0:
        return "gamma or log-normal"
    return "normal (or student-t / laplace for heavy tails)"


class Head:
    """A family with its options and the target's scale: raw (B, k) -> a distribution with batch shape (B,)."""

    def __init__(self, name: str, scale: TargetScale, **options: Any) -> None:
        if name not in FAMILIES:
            raise ConfigError(f"task.distribution: unknown family {name!r} (known: {one_of(FAMILIES)})." + suggest(name, FAMILIES))
        self.family, self.scale, self.options = FAMILIES[name], scale, dict(options)
        if name in ("poisson", "negative-binomial", "gamma", "log-normal"):
            _log_mean(scale, name)

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def num_outputs(self) -> int:
        return self.family.outputs(self.scale, self.options)

    def __call__(self, raw: torch.Tensor) -> D.Distribution:
        """The distribution of raw outputs (B, k) (computed in float32 at least: logs and exps of mixed precision)."""
        if raw.ndim != 2 or raw.shape[1] != self.num_outputs:
            raise ConfigError(f"task.distribution={self.name}: needs {self.num_outputs} raw outputs per row, the model gives {tuple(raw.shape)}.")
        return self.family.build(raw.float() if raw.dtype in (torch.float16, torch.bfloat16) else raw, self.scale, self.options)

    def check(self, y: torch.Tensor, where: str = "data.target") -> None:
        """A one-line DataError when a target lies outside the family's support."""
        support = self.family.support
        ok = in_support(support, y)
        if bool(ok.all()):
            if support == "class" and float(y.max()) >= self.num_outputs:
                raise DataError(f"{where}: class {int(y.max())} is beyond the {self.num_outputs} classes seen in training (task.distribution=categorical).")
            return
        bad = float(y[~ok][0])
        y_min, y_max = float(y.min()), float(y.max())
        integer = bool((y == torch.round(y)).all())
        raise DataError(
            f"{where}: a value {bad:g} is outside the support of task.distribution={self.name} "
            f"(it needs {_SUPPORT_NEEDS.get(support, 'finite values')}); try task.distribution={fitting_family(y_min, y_max, integer)}."
        )

    def check_meta(self) -> None:
        """The same check on the training target's range (from the meta), before anything is built."""
        s = self.scale
        if not (math.isfinite(s.min) and math.isfinite(s.max)):
            return
        if self.family.support in ("count", "binary", "class") and not s.integer:
            raise DataError(
                f"data.target: the training target has non-integer values; task.distribution={self.name} needs "
                f"{_SUPPORT_NEEDS[self.family.support]}; try task.distribution={fitting_family(s.min, s.max, False)}."
            )
        self.check(torch.tensor([s.min, s.max], dtype=torch.float64), "data.target (training rows)")


def reshape_distribution(dist: D.Distribution, shape: Sequence[int]) -> D.Distribution:
    """The same location-scale distribution (normal, Laplace, Student's t) with batch shape ``shape``."""
    if isinstance(dist, D.StudentT):
        return StudentT(dist.df.reshape(shape), dist.loc.reshape(shape), dist.scale.reshape(shape))
    if isinstance(dist, (D.Normal, D.Laplace)):
        return type(dist)(dist.loc.reshape(shape), dist.scale.reshape(shape), validate_args=False)
    raise ConfigError(f"reshape_distribution: {type(dist).__name__} is not a location-scale family (normal, laplace, student-t).")


def nll(dist: D.Distribution, y: torch.Tensor) -> torch.Tensor:
    """(B,) negative log-likelihood, nats per row."""
    return -dist.log_prob(y)





# --------------------------------------------------------------------------- quantiles

#: samples drawn for quantiles (and CRPS) of a family with neither an inverse CDF nor a CDF in torch
SAMPLES = 2000


def seeded_samples(dist: D.Distribution, n: int = SAMPLES, seed: int = 0) -> torch.Tensor:
    """(n, B) samples, reproducible (the global RNG is forked, not consumed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dist.sample((n,)).to(torch.float64)


def _discrete_quantiles(dist: D.Distribution, levels: torch.Tensor) -> torch.Tensor:
    """Smallest integer k with F(k) >= q, F the running sum of the pmf over 0, 1, 2, ... (exact)."""
    mean, sd = dist.mean.double(), dist.variance.double().sqrt()
    top = 1 if isinstance(dist, D.Bernoulli) else int(min(float((mean + 12 * sd + 10).max()), 1e5))
    grid = torch.arange(top + 1, dtype=dist.mean.dtype, device=dist.mean.device)  # (K,)
    cdf = dist.log_prob(grid[:, None].expand(-1, mean.shape[0])).exp().double().cumsum(0)  # (K, B)
    # (B, Q): the first k whose cdf reaches the level (the top of the grid when the mass is beyond it)
    reached = cdf.T[:, :, None] >= levels.double()[None, None, :] - 1e-12  # (B, K, Q)
    return reached.float().argmax(1).to(torch.float64).where(reached.any(1), torch.tensor(float(top), dtype=torch.float64))


def _bisect(dist: D.Distribution, levels: torch.Tensor, steps: int = 80) -> torch.Tensor:
    """Quantiles of a continuous distribution with a CDF by bisection, bracketed from the mean and spread."""
    mean, sd = dist.mean.double(), dist.variance.double().sqrt().clamp_min(1e-12)
    lo = (mean - 40 * sd)[:, None].expand(-1, len(levels)).clone()
    hi = (mean + 40 * sd)[:, None].expand(-1, len(levels)).clone()
    support = getattr(dist, "support", None)
    if support is not None and getattr(support, "lower_bound", None) is not None:
        lo = lo.clamp_min(float(support.lower_bound))
    q = levels.double()[None, :]
    for _ in range(steps):
        mid = (lo + hi) / 2
        below = dist.cdf(mid.T.to(dist.mean.dtype)).T.double() < q  # cdf over (Q, B) -> (B, Q)
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


def quantiles(dist: D.Distribution, levels: Sequence[float] | torch.Tensor, discrete: bool = False) -> torch.Tensor:
    """(B, Q) quantiles of a distribution with batch shape (B,).

    In order of preference: the inverse CDF (normal, Laplace, log-normal); for a count family the
    exact step quantile from the running sum of the pmf; bisection on the CDF (gamma, mixtures);
    scipy's inverse CDF for Student's t and beta (torch has neither CDF); else the empirical quantile
    of :data:`SAMPLES` seeded samples (a categorical target).
    """
    q = torch.as_tensor(levels, dtype=torch.float64)
    device = dist.mean.device
    if discrete and not isinstance(dist, D.Categorical):
        return _discrete_quantiles(dist, q.to(device))
    try:
        return dist.icdf(q[:, None].to(device, dist.mean.dtype)).T.double()
    except NotImplementedError:
        pass
    try:
        dist.cdf(dist.mean)
        return _bisect(dist, q.to(device))
    except NotImplementedError:
        pass
    if isinstance(dist, (D.StudentT, D.Beta)):  # torch has neither their inverse CDF nor their CDF
        return _scipy_quantiles(dist, q).to(device)
    draws = seeded_samples(dist)
    return torch.quantile(draws, q.to(device), dim=0).T  # (B, Q)


def _scipy_quantiles(dist: D.Distribution, q: torch.Tensor) -> torch.Tensor:
    """Student's t: loc + scale stdtrit(df, q); beta: betaincinv(a, b, q) (scipy.special)."""
    from scipy import special

    levels = q.numpy()[None, :]
    if isinstance(dist, D.StudentT):
        df, loc, scale = (t.detach().double().cpu().numpy()[:, None] for t in (dist.df, dist.loc, dist.scale))
        return torch.from_numpy(loc + scale * special.stdtrit(df, levels))
    a, b = (t.detach().double().cpu().numpy()[:, None] for t in (dist.concentration1, dist.concentration0))
    return torch.from_numpy(special.betaincinv(a, b, levels))


__all__ = ["FAMILIES", "Family", "Head", "TargetScale", "fitting_family", "in_support", "isp", "negative_binomial", "nll", "quantiles", "reshape_distribution",
           "seeded_samples"]
