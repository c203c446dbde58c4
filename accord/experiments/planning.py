"""Sample sizes: the textbook fixed-horizon one, and the one the always-valid test needs."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from accord.experiments.declaration import Experiment, MetricKind
from accord.experiments.sequential import half_width, mixture_variance

POWER = 0.8


def fixed_horizon_per_arm(
    kind: MetricKind,
    baseline: float,
    mde: float,
    alpha: float,
    power: float = POWER,
    baseline_sd: float | None = None,
) -> int:
    """Customers per arm (equal arms) for a two-sided fixed-horizon z-test.

    Conversion: Fleiss' formula without continuity correction,
    n = (z₁₋α/₂ √(2 p̄ q̄) + z_power √(p₁q₁ + p₂q₂))² / δ²;
    mean value: n = 2 (z₁₋α/₂ + z_power)² σ²/δ².
    """
    z_alpha = float(norm.ppf(1 - alpha / 2))
    z_power = float(norm.ppf(power))
    if kind is MetricKind.CONVERSION:
        p1, p2 = baseline, baseline + mde
        p_bar = (p1 + p2) / 2
        root = z_alpha * math.sqrt(2 * p_bar * (1 - p_bar)) + z_power * math.sqrt(
            p1 * (1 - p1) + p2 * (1 - p2)
        )
        return math.ceil(root**2 / mde**2)
    if baseline_sd is None:
        raise ValueError("a mean-value sample size needs the baseline standard deviation")
    return math.ceil(2 * (z_alpha + z_power) ** 2 * baseline_sd**2 / mde**2)


def _final_power(experiment: Experiment, total: int) -> float:
    """P(the always-valid boundary is crossed at the last peek alone) with the true effect = MDE:
    a lower bound on the sequential test's power (an earlier crossing also rejects)."""
    w_control, w_treated = experiment.weights[0], experiment.weights[1]
    n_c, n_t = w_control * total, w_treated * total
    metric, mde = experiment.metric, experiment.mde
    if metric.kind is MetricKind.CONVERSION:
        pooled = metric.baseline + w_treated * mde
        variance = pooled * (1 - pooled) * (1 / n_c + 1 / n_t)
    else:
        # Spend-like values keep their coefficient of variation when the mean moves, so the
        # treated arm's spread grows with its mean; assuming the control's would oversell power.
        sd = metric.baseline_sd or 0.0
        sd_treated = sd * (metric.baseline + mde) / metric.baseline if metric.baseline > 0 else sd
        variance = sd**2 / n_c + sd_treated**2 / n_t
    h = float(half_width(np.array(variance), mixture_variance(mde), experiment.alpha))
    sd_effect = math.sqrt(variance)
    return float(norm.sf((h - mde) / sd_effect) + norm.cdf((-h - mde) / sd_effect))


def sequential_total(experiment: Experiment, power: float = POWER) -> int:
    """Customers (all arms) at which the always-valid test reaches ``power`` against the MDE for
    the first arm after the control: the declared sample size the recommendation stops at."""
    low, high = 4, 8
    while _final_power(experiment, high) < power:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if _final_power(experiment, middle) >= power:
            high = middle
        else:
            low = middle
    return high
