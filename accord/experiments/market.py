"""A seeded market: customers arrive, are assigned, convert at their arm's known rate and spend a
known (lognormal) amount, so the statistics can be checked against the truth, not only run.

Two paths: ``Market.run`` assigns each customer by the real hash of an opaque reference (what a
coordinator would do); ``battery`` draws many experiments at once with numpy, arms drawn by the
declared weights (what the hash does in distribution), for the benches' hundreds of runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from accord.experiments.assignment import assign
from accord.experiments.declaration import Experiment, MetricKind
from accord.experiments.sequential import ArmSums

SPEND_SIGMA = 0.75  # the lognormal's shape: a long tail of big baskets


@dataclass(frozen=True)
class ArmTruth:
    conversion_rate: float
    mean_spend: float  # the expected amount of one conversion

    @property
    def value_mean(self) -> float:
        """Expected value per customer (0 without a conversion)."""
        return self.conversion_rate * self.mean_spend

    @property
    def value_sd(self) -> float:
        second = self.conversion_rate * self.mean_spend**2 * math.exp(SPEND_SIGMA**2)
        return math.sqrt(second - self.value_mean**2)


def _spend(rng: np.random.Generator, mean: float, size: tuple[int, ...]) -> NDArray[np.float64]:
    mu = math.log(mean) - SPEND_SIGMA**2 / 2  # so that E[spend] = mean
    return rng.lognormal(mu, SPEND_SIGMA, size)


@dataclass(frozen=True)
class Observed:
    """The customers who entered the experiment, in arrival order."""

    keys: list[bytes]
    arms: list[str]
    converted: NDArray[np.bool_]
    value: NDArray[np.float64]


class Market:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def references(self, n: int) -> list[bytes]:
        """Opaque per-relationship references, as a brand node would hold them."""
        raw = self.rng.bytes(16 * n)
        return [raw[i * 16 : (i + 1) * 16] for i in range(n)]

    def run(
        self, experiment: Experiment, truths: Mapping[str, ArmTruth], arrivals: int
    ) -> Observed:
        keys, arms = [], []
        for key in self.references(arrivals):
            arm = assign(experiment, key)
            if arm is not None:
                keys.append(key)
                arms.append(arm)
        rates = np.array([truths[a].conversion_rate for a in arms])
        spends = np.array([truths[a].mean_spend for a in arms])
        converted = self.rng.random(len(arms)) < rates
        value = np.where(converted, _spend(self.rng, 1.0, (len(arms),)) * spends, 0.0)
        return Observed(keys, arms, converted, value)


def battery(
    rng: np.random.Generator,
    runs: int,
    customers: int,
    weights: Sequence[float],
    truths: Sequence[ArmTruth],
) -> tuple[NDArray[np.int8], NDArray[np.bool_], NDArray[np.float64]]:
    """``runs`` independent experiments of ``customers`` arrivals: arm index, converted, value."""
    shape = (runs, customers)
    edges = np.cumsum(np.asarray(weights, dtype=float) / sum(weights))[:-1]
    arm = np.searchsorted(edges, rng.random(shape), side="right").astype(np.int8)
    rate = np.array([t.conversion_rate for t in truths])[arm]
    spend = np.array([t.mean_spend for t in truths])[arm]
    converted = rng.random(shape) < rate
    value = np.where(converted, _spend(rng, 1.0, shape) * spend, 0.0)
    return arm, converted, value


def sums_at_peeks(
    arm_index: NDArray[np.int8], values: NDArray[np.float64], arm: int, every: int
) -> ArmSums:
    """One arm's running sums after every ``every`` arrivals (last axis: the peeks)."""
    ends = np.arange(every - 1, arm_index.shape[-1], every)
    mine = arm_index == arm
    picked = np.where(mine, values, 0.0)
    return ArmSums(
        n=np.cumsum(mine, axis=-1, dtype=np.float64)[..., ends],
        total=np.cumsum(picked, axis=-1)[..., ends],
        squares=np.cumsum(picked * picked, axis=-1)[..., ends],
    )


def metric_values(
    kind: MetricKind, converted: NDArray[np.bool_], value: NDArray[np.float64]
) -> NDArray[np.float64]:
    return converted.astype(np.float64) if kind is MetricKind.CONVERSION else value
