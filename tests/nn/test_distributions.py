"""Distribution heads: each family's NLL is torch.distributions' own, with the parameters its documented link gives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import distributions as D

from deepatlas.errors import DataError
from deepatlas.metrics.regression import crps, crps_laplace, crps_normal, crps_samples
from deepatlas.nn.distributions import FAMILIES, Head, TargetScale, isp, quantiles

REAL = TargetScale(mean=50.0, std=10.0, min=10.0, max=90.0)
COUNT = TargetScale(mean=3.0, std=4.5, min=0.0, max=40.0, integer=True)
POSITIVE = TargetScale(mean=5.0, std=2.0, min=0.5, max=20.0)
UNIT = TargetScale(mean=0.3, std=0.1, min=0.01, max=0.9)
BINARY = TargetScale(mean=0.25, std=0.43, min=0.0, max=1.0, integer=True)
CLASSES = TargetScale(mean=1.2, std=0.8, min=0.0, max=3.0, integer=True)


def sp(r: torch.Tensor, at: float) -> torch.Tensor:
    return F.softplus(r + math.log(math.expm1(at)))


def expected(name: str, r: torch.Tensor) -> D.Distribution:
    """The distributions the module docstring's link table promises, written out independently."""
    if name == "normal":
        return D.Normal(50 + 10 * r[:, 0], 10 * sp(r[:, 1], 1.0))
    if name == "normal-fixed":
        return D.Normal(50 + 10 * r[:, 0], torch.full_like(r[:, 0], 10.0))
    if name == "laplace":
        return D.Laplace(50 + 10 * r[:, 0], 10 / math.sqrt(2) * sp(r[:, 1], 1.0))
    if name == "student-t":
        return D.StudentT(2 + sp(r[:, 2], 8.0), 50 + 10 * r[:, 0], 10 * sp(r[:, 1], 1.0))
    if name == "poisson":
        return D.Poisson(3.0 * torch.exp(r[:, 0]))
    if name == "negative-binomial":
        mu, alpha = 3.0 * torch.exp(r[:, 0]), sp(r[:, 1], (4.5**2 - 3) / 9)
        return D.NegativeBinomial(total_count=1 / alpha, logits=torch.log(alpha * mu))
    if name == "gamma":
        mu, k = 5.0 * torch.exp(r[:, 0]), sp(r[:, 1], 25 / 4)
        return D.Gamma(k, k / mu)
    if name == "log-normal":
        v = math.sqrt(math.log(1 + 4 / 25))
        return D.LogNormal(math.log(5) - v**2 / 2 + v * r[:, 0], v * sp(r[:, 1], 1.0))
    if name == "beta":
        mu, phi = torch.sigmoid(math.log(0.3 / 0.7) + r[:, 0]), sp(r[:, 1], 0.21 / 0.01 - 1)
        return D.Beta(mu * phi, (1 - mu) * phi)
    if name == "gaussian-mixture":
        return D.MixtureSameFamily(D.Categorical(logits=r[:, :3]), D.Normal(50 + 10 * r[:, 3:6], 10 * sp(r[:, 6:9], 1.0)))
    if name == "bernoulli":
        return D.Bernoulli(logits=math.log(0.25 / 0.75) + r[:, 0])
    return D.Categorical(logits=r)


SCALES = {
    "normal": REAL, "normal-fixed": REAL, "laplace": REAL, "student-t": REAL, "gaussian-mixture": REAL,
    "poisson": COUNT, "negative-binomial": COUNT, "gamma": POSITIVE, "log-normal": POSITIVE, "beta": UNIT,
    "bernoulli": BINARY, "categorical": CLASSES,
}


def targets(name: str, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    support = FAMILIES[name].support
    if support == "real":
        return 50 + 10 * torch.randn(n, generator=g)
    if support == "count":
        return torch.randint(0, 12, (n,), generator=g).float()
    if support == "positive":
        return 0.5 + 8 * torch.rand(n, generator=g)
    if support == "unit":
        return 0.02 + 0.9 * torch.rand(n, generator=g)
    if support == "binary":
        return torch.randint(0, 2, (n,), generator=g).float()
    return torch.randint(0, 4, (n,), generator=g).float()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_nll_is_torch_log_prob_of_the_documented_parameters_and_has_finite_gradients(name: str) -> None:
    head = Head(name, SCALES[name])
    torch.manual_seed(0)
    raw = (0.5 * torch.randn(64, head.num_outputs)).requires_grad_()
    y = targets(name, 64)
    nll = -head(raw).log_prob(y)
    oracle = -expected(name, raw.detach()).log_prob(y)
    assert nll.shape == (64,)
    torch.testing.assert_close(nll.detach(), oracle, rtol=1e-6, atol=1e-6)
    nll.mean().backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()


@pytest.mark.parametrize("name", ["normal", "laplace", "normal-fixed", "poisson", "negative-binomial", "gamma", "log-normal", "beta"])
def test_a_fresh_network_predicts_the_marginal(name: str) -> None:
    s = SCALES[name]
    dist = Head(name, s)(torch.zeros(4, Head(name, s).num_outputs))
    torch.testing.assert_close(dist.mean, torch.full((4,), s.mean), rtol=1e-5, atol=1e-5)
    if name != "poisson":  # a Poisson's variance is its mean: only the mean can match
        torch.testing.assert_close(dist.stddev, torch.full((4,), s.std), rtol=1e-4, atol=1e-4)


def test_negative_binomial_is_nb2_with_mean_mu_and_variance_mu_plus_alpha_mu2() -> None:
    mu, alpha = torch.tensor([0.5, 3.0, 20.0]), torch.tensor([0.1, 1.0, 2.5])
    from deepatlas.nn.distributions import negative_binomial

    dist = negative_binomial(mu, alpha)
    torch.testing.assert_close(dist.mean, mu)
    torch.testing.assert_close(dist.variance, mu + alpha * mu**2)
    y = torch.tensor([0.0, 4.0, 31.0])
    scipy = stats.nbinom.logpmf(y.numpy(), 1 / alpha.numpy(), 1 / (1 + alpha.numpy() * mu.numpy()))
    np.testing.assert_allclose(dist.log_prob(y).numpy(), scipy, rtol=1e-5)


def test_student_t_with_fixed_df_has_two_outputs() -> None:
    head = Head("student-t", REAL, df=5.0)
    assert head.num_outputs == 2
    assert torch.equal(head(torch.zeros(3, 2)).df, torch.full((3,), 5.0))
    assert Head("gaussian-mixture", REAL, components=4).num_outputs == 12


@pytest.mark.parametrize(("name", "bad", "suggestion"), [
    ("poisson", -1.0, "normal"), ("poisson", 2.5, "normal"), ("beta", 1.0, "gamma"), ("gamma", 0.0, "normal"),
    ("bernoulli", 2.0, "negative-binomial"),
])
def test_a_target_outside_the_support_is_one_line_naming_the_option_and_a_family(name: str, bad: float, suggestion: str) -> None:
    head = Head(name, SCALES[name])
    with pytest.raises(DataError) as err:
        head.check(torch.tensor([0.5 if name in ("beta", "gamma") else 1.0, bad]))
    message = str(err.value)
    assert "\n" not in message and f"task.distribution={name}" in message and suggestion in message and "data.target" in message


def test_a_real_training_target_refuses_a_count_family() -> None:
    with pytest.raises(DataError, match="non-integer"):
        Head("poisson", REAL).check_meta()


def test_isp_inverts_softplus() -> None:
    for v in (0.01, 1.0, 8.0, 30.0):
        assert F.softplus(torch.tensor(isp(v), dtype=torch.float64)).item() == pytest.approx(v, rel=1e-9)


def test_quantiles_match_scipy_by_icdf_bisection_pmf_and_sampling() -> None:
    levels = [0.05, 0.5, 0.95]
    normal = D.Normal(torch.tensor([0.0, 3.0]), torch.tensor([1.0, 2.0]))
    np.testing.assert_allclose(quantiles(normal, levels).numpy(), stats.norm.ppf(levels, [[0.0], [3.0]], [[1.0], [2.0]]), rtol=1e-5)
    gamma = D.Gamma(torch.tensor([2.0, 7.0]), torch.tensor([0.5, 3.0]))
    np.testing.assert_allclose(quantiles(gamma, levels).numpy(), stats.gamma.ppf(levels, [[2.0], [7.0]], scale=[[2.0], [1 / 3]]), rtol=1e-4)
    poisson = D.Poisson(torch.tensor([0.3, 4.0, 25.0]))
    np.testing.assert_array_equal(quantiles(poisson, levels, discrete=True).numpy(), stats.poisson.ppf(levels, [[0.3], [4.0], [25.0]]))
    from deepatlas.nn.distributions import negative_binomial

    nb = negative_binomial(torch.tensor([2.0, 10.0]), torch.tensor([0.5, 1.5]))
    np.testing.assert_array_equal(
        quantiles(nb, levels, discrete=True).numpy(),
        stats.nbinom.ppf(levels, [[2.0], [1 / 1.5]], [[1 / 2.0], [1 / 16.0]]),
    )
    t = D.StudentT(torch.tensor([4.0]), torch.tensor([1.0]), torch.tensor([2.0]))
    np.testing.assert_allclose(quantiles(t, levels).numpy(), 1 + 2 * stats.t.ppf(levels, 4.0)[None], rtol=1e-5)


def test_beta_quantiles_are_scipys() -> None:
    beta = D.Beta(torch.tensor([2.0, 0.5]), torch.tensor([5.0, 0.7]))
    np.testing.assert_allclose(quantiles(beta, [0.05, 0.5, 0.95]).numpy(), stats.beta.ppf([0.05, 0.5, 0.95], [[2.0], [0.5]], [[5.0], [0.7]]), rtol=1e-5)


def test_crps_closed_forms_equal_the_integral_and_the_sample_estimator() -> None:
    y = torch.tensor([-1.0, 0.3, 2.5], dtype=torch.float64)
    mu, sigma = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    z = np.linspace(-30, 30, 300001)
    for closed, cdf in ((crps_normal, stats.norm.cdf), (crps_laplace, stats.laplace.cdf)):
        for i in range(3):
            f = cdf(z, float(mu[i]), float(sigma[i]))
            integral = np.trapezoid((f - (z >= float(y[i]))) ** 2, z)
            assert float(closed(mu[i:i + 1], sigma[i:i + 1], y[i:i + 1])) == pytest.approx(integral, abs=1e-4)
    draws = D.Normal(mu, sigma).sample((200000,))
    torch.testing.assert_close(crps_samples(draws, y), crps_normal(mu, sigma, y), atol=0.01, rtol=0.0)
    gamma = D.Gamma(torch.tensor([2.0]), torch.tensor([1.0]))
    f = stats.gamma.cdf(z[z > 0], 2.0)
    integral = np.trapezoid((f - (z[z > 0] >= 1.5)) ** 2, z[z > 0])
    assert float(crps(gamma, torch.tensor([1.5]))) == pytest.approx(integral, abs=0.02)
