"""The ZILN head against closed forms on a known zero-inflated log-normal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from accord.scoring.ziln import (
    SIGMA_FLOOR,
    ZilnParams,
    expected_spend,
    params_from_output,
    ziln_loss,
    ziln_params,
    ziln_quantile,
)

P, MU, SIGMA = 0.3, 3.2, 0.9


def sample(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < P
    return np.where(positive, rng.lognormal(MU, SIGMA, n), 0.0)


def raw_output(n: int, p: float, mu: float, sigma: float) -> torch.Tensor:
    """The network output whose head parameters are exactly (p, mu, sigma)."""
    raw_sigma = math.log(math.expm1(sigma - SIGMA_FLOOR))  # inverse of softplus + floor
    row = [math.log(p / (1 - p)), mu, raw_sigma]
    return torch.tensor([row] * n, dtype=torch.float64)


def test_loss_at_true_parameters_is_the_analytic_negative_log_likelihood() -> None:
    y = sample(5000)
    loss = float(ziln_loss(torch.from_numpy(y), raw_output(len(y), P, MU, SIGMA)))
    positive = y > 0
    analytic = -(
        np.sum(np.log1p(-P) * ~positive)
        + np.sum(np.log(P) + stats.lognorm.logpdf(y[positive], s=SIGMA, scale=np.exp(MU)))
    ) / len(y)
    assert loss == pytest.approx(analytic, rel=1e-9)


def test_head_parameters_map_back_from_the_output() -> None:
    params = params_from_output(raw_output(4, P, MU, SIGMA))
    assert params.p == pytest.approx([P] * 4)
    assert params.mu == pytest.approx([MU] * 4)
    assert params.sigma == pytest.approx([SIGMA] * 4)
    _logit, _mu, sigma = ziln_params(torch.zeros(2, 3))
    assert (sigma > 0).all()
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        ziln_params(torch.zeros(2, 2))


def test_expected_spend_is_p_exp_mu_plus_half_sigma_squared_and_matches_samples() -> None:
    closed = float(expected_spend(np.array([P]), np.array([MU]), np.array([SIGMA]))[0])
    assert closed == pytest.approx(P * math.exp(MU + SIGMA**2 / 2))
    y = sample(400_000, seed=1)
    standard_error = y.std() / math.sqrt(len(y))
    assert abs(y.mean() - closed) < 4 * standard_error


def test_quantiles_invert_the_mixture_cdf() -> None:
    p, mu, sigma = np.array([P]), np.array([MU]), np.array([SIGMA])
    assert ziln_quantile(p, mu, sigma, 0.5)[0] == 0.0  # 70 % of the mass sits at zero
    for q in (0.75, 0.9, 0.99):
        x = ziln_quantile(p, mu, sigma, q)[0]
        cdf = (1 - P) + P * stats.lognorm.cdf(x, s=SIGMA, scale=math.exp(MU))
        assert cdf == pytest.approx(q, abs=1e-9)
    low, high = ZilnParams(p, mu, sigma).interval(0.5)
    assert low[0] == 0.0 and high[0] > 0
    y = sample(100_000, seed=2)
    assert np.mean(y <= ZilnParams(p, mu, sigma).quantile(0.9)[0]) == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="strictly between"):
        ziln_quantile(p, mu, sigma, 1.0)


def test_fitting_on_many_samples_recovers_the_parameters() -> None:
    y = torch.from_numpy(sample(20_000, seed=3))
    output = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([output], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = ziln_loss(y, output.expand(len(y), 3))
        torch.autograd.backward(loss)
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    fitted = params_from_output(output.detach())
    assert fitted.p[0] == pytest.approx(P, abs=0.01)
    assert fitted.mu[0] == pytest.approx(MU, abs=0.03)
    assert fitted.sigma[0] == pytest.approx(SIGMA, abs=0.03)
