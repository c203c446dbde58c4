"""The zero-inflated log-normal (ZILN) head: a spend is 0 with probability ``1 - p``, else
log-normal with parameters ``mu`` and ``sigma`` (Wang, Liu & Miao 2019, "A deep probabilistic
model for customer lifetime value prediction").

A network emits three numbers per customer: the logit of returning, ``mu`` and a raw scale
that :func:`ziln_params` maps to ``sigma = softplus(raw) + SIGMA_FLOOR``. :func:`ziln_loss` is
the exact negative log-likelihood of the mixture (mean over customers); :func:`expected_spend`
is ``p * exp(mu + sigma**2 / 2)``, and :func:`ziln_quantile` gives quantiles of the mixture for
an interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtri
from torch.nn import functional

SIGMA_FLOOR = 1e-3
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

__all__ = [
    "SIGMA_FLOOR",
    "ZilnParams",
    "expected_spend",
    "fit_constant",
    "params_from_output",
    "params_from_output_array",
    "raw_output_for",
    "ziln_log_likelihood",
    "ziln_loss",
    "ziln_params",
    "ziln_quantile",
]


@dataclass(frozen=True)
class ZilnParams:
    """Per-customer mixture parameters as numpy arrays of equal length."""

    p: np.ndarray  # probability of a positive spend
    mu: np.ndarray  # mean of log spend, given positive
    sigma: np.ndarray  # standard deviation of log spend, given positive

    def expected(self) -> np.ndarray:
        return expected_spend(self.p, self.mu, self.sigma)

    def quantile(self, q: float) -> np.ndarray:
        return ziln_quantile(self.p, self.mu, self.sigma, q)

    def interval(self, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """A central interval of the mixture holding ``coverage`` of its mass."""
        tail = (1.0 - coverage) / 2.0
        return self.quantile(tail), self.quantile(1.0 - tail)


def ziln_params(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a ``(n, 3)`` network output into ``(logit, mu, sigma)``."""
    if output.ndim != 2 or output.shape[1] != 3:
        raise ValueError(f"a ZILN output has shape (n, 3), got {tuple(output.shape)}")
    logit, mu, raw = output[:, 0], output[:, 1], output[:, 2]
    return logit, mu, functional.softplus(raw) + SIGMA_FLOOR


def ziln_log_likelihood(
    y: torch.Tensor, logit: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """Per-customer log-likelihood of spends ``y >= 0`` under the mixture."""
    positive = y > 0
    log_p = functional.logsigmoid(logit)
    log_not_p = functional.logsigmoid(-logit)
    safe_y = torch.where(positive, y, torch.ones_like(y))
    log_y = torch.log(safe_y)
    z = (log_y - mu) / sigma
    log_density = -log_y - torch.log(sigma) - LOG_SQRT_2PI - 0.5 * z * z
    return torch.where(positive, log_p + log_density, log_not_p)


def ziln_loss(y: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of spends ``y`` under the ZILN output ``(n, 3)``."""
    logit, mu, sigma = ziln_params(output)
    return -ziln_log_likelihood(y, logit, mu, sigma).mean()


def expected_spend(p: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``E[spend] = p * exp(mu + sigma**2 / 2)``."""
    return np.asarray(p * np.exp(mu + 0.5 * sigma * sigma), dtype=float)


def ziln_quantile(p: np.ndarray, mu: np.ndarray, sigma: np.ndarray, q: float) -> np.ndarray:
    """The ``q``-quantile of the mixture: 0 while ``q <= 1 - p``, else the log-normal's
    ``(q - (1 - p)) / p`` quantile."""
    if not 0.0 < q < 1.0:
        raise ValueError("a quantile level lies strictly between 0 and 1")
    p = np.asarray(p, dtype=float)
    level = np.clip((q - (1.0 - p)) / np.maximum(p, 1e-300), 1e-12, 1.0 - 1e-12)
    positive = np.exp(mu + sigma * ndtri(level))
    return np.where(q > 1.0 - p, positive, 0.0)


def params_from_output(output: torch.Tensor) -> ZilnParams:
    """Numpy mixture parameters from a ``(n, 3)`` network output."""
    with torch.no_grad():
        logit, mu, sigma = ziln_params(output)
        return ZilnParams(
            p=torch.sigmoid(logit).double().numpy(),
            mu=mu.double().numpy(),
            sigma=sigma.double().numpy(),
        )


def fit_constant(y: np.ndarray) -> ZilnParams:
    """The maximum-likelihood ZILN for spends ``y`` that ignores every feature (one customer's
    parameters, length 1): the share of positive spends and the mean and standard deviation
    of their logarithms. A head starts here, and it is the estimate for a group of customers
    about whom nothing else may be used."""
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or y.size == 0 or not np.isfinite(y).all() or (y < 0).any():
        raise ValueError("spends are a non-empty vector of finite, non-negative numbers")
    positive = np.log(y[y > 0])
    share = min(max(positive.size / y.size, 1e-4), 1.0 - 1e-4)
    mu = float(positive.mean()) if positive.size else 0.0
    sigma = float(positive.std()) if positive.size > 1 else 1.0
    return ZilnParams(
        p=np.array([share]), mu=np.array([mu]), sigma=np.array([max(sigma, 2 * SIGMA_FLOOR)])
    )


def raw_output_for(params: ZilnParams) -> np.ndarray:
    """The ``(n, 3)`` network output whose head parameters are ``params`` (inverse of
    :func:`params_from_output`)."""
    p = np.clip(np.asarray(params.p, dtype=float), 1e-12, 1.0 - 1e-12)
    excess = np.asarray(params.sigma, dtype=float) - SIGMA_FLOOR
    if (excess <= 0).any():
        raise ValueError(f"sigma must exceed the floor {SIGMA_FLOOR}")
    raw_sigma = excess + np.log(-np.expm1(-excess))  # inverse softplus, stable for large x
    return np.stack([np.log(p / (1.0 - p)), np.asarray(params.mu, dtype=float), raw_sigma], axis=1)


def params_from_output_array(output: np.ndarray) -> ZilnParams:
    """:func:`params_from_output` for a numpy ``(n, 3)`` output."""
    return params_from_output(torch.from_numpy(np.asarray(output, dtype=np.float64)))
