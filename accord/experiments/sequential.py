"""Always-valid inference for an arm against the control: the mixture sequential probability ratio
test (mSPRT) with a normal mixture, after Johari, Koomen, Pekelis and Walsh, "Always Valid
Inference" (Operations Research, 2022), in its two-sample normal approximation.

With θ̂ the difference of the arms' means, V its variance and a N(0, τ²) mixture over the effect,
the likelihood ratio against θ = 0 is

    Λ = sqrt(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²)))

and 1/Λ, kept as a running minimum over the peeks, is a p-value that stays valid however often
the marketer looks (Ville's inequality). Inverting Λ ≥ 1/α gives the always-valid interval
θ̂ ± h(V), intersected over the peeks. Every function takes numpy arrays of any shape so a whole
battery of experiments is tested at once; the last axis is time where a running operation is
named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from accord.experiments.declaration import MetricKind

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ArmSums:
    """Per-arm running sufficient statistics: customers, Σ value, Σ value² (arrays alike)."""

    n: FloatArray
    total: FloatArray
    squares: FloatArray


def difference(
    kind: MetricKind, control: ArmSums, treated: ArmSums
) -> tuple[FloatArray, FloatArray]:
    """θ̂ = mean(treated) - mean(control) and its estimated variance (NaN where an arm is empty).

    Conversion pools the arms' rate, the variance under the null the test is about (and never zero
    merely because one arm has not converted yet); mean value uses each arm's own variance."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c = control.total / control.n
        mean_t = treated.total / treated.n
        effect = mean_t - mean_c
        if kind is MetricKind.CONVERSION:
            pooled = (control.total + treated.total) / (control.n + treated.n)
            variance = pooled * (1 - pooled) * (1 / control.n + 1 / treated.n)
        else:
            var_c = (control.squares - control.n * mean_c**2) / (control.n - 1)
            var_t = (treated.squares - treated.n * mean_t**2) / (treated.n - 1)
            variance = np.maximum(var_c, 0) / control.n + np.maximum(var_t, 0) / treated.n
    return effect, variance


def p_value(effect: FloatArray, variance: FloatArray, tau2: float) -> FloatArray:
    """1/Λ at each peek on its own (1 where the variance is not yet defined); see running_min."""
    ok = np.isfinite(variance) & (variance > 0) & np.isfinite(effect)
    v = np.where(ok, variance, 1.0)
    theta = np.where(ok, effect, 0.0)
    log_lambda = 0.5 * np.log(v / (v + tau2)) + theta**2 * tau2 / (2 * v * (v + tau2))
    return np.where(ok, np.minimum(1.0, np.exp(-log_lambda)), 1.0)


def half_width(variance: FloatArray, tau2: float, alpha: float) -> FloatArray:
    """h(V): the effect is excluded at level α once |θ̂ - θ| > h(V)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        width: FloatArray = np.sqrt(
            variance
            * (variance + tau2)
            / tau2
            * (2 * np.log(1 / alpha) + np.log((variance + tau2) / variance))
        )
    return width


def running_p(effect: FloatArray, variance: FloatArray, tau2: float) -> FloatArray:
    """The always-valid p-value over the peeks (last axis): the running minimum of 1/Λ."""
    return np.minimum.accumulate(p_value(effect, variance, tau2), axis=-1)


def running_interval(
    effect: FloatArray, variance: FloatArray, tau2: float, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """The always-valid (1-α) interval over the peeks: each peek's interval, intersected so far."""
    h = half_width(variance, tau2, alpha)
    low = np.where(np.isfinite(h), effect - h, -np.inf)
    high = np.where(np.isfinite(h), effect + h, np.inf)
    return np.maximum.accumulate(low, axis=-1), np.minimum.accumulate(high, axis=-1)


def mixture_variance(mde: float) -> float:
    """τ²: the mixture is centred on effects of the declared MDE's size (τ = MDE)."""
    return mde * mde
