"""What an experiment declares: touchpoint, audience, weighted arms, one primary metric with its
window, the minimum detectable effect, α, and the layer it shares customers with no other
experiment in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from itertools import pairwise

from accord.errors import InvalidInput

BUCKETS = 10_000  # a layer's hash space; an experiment owns a contiguous range of it


class MetricKind(StrEnum):
    CONVERSION = "conversion"  # did the outcome happen within the window (0/1 per customer)
    MEAN_VALUE = "mean_value"  # the outcome's summed value within the window (0 without one)


@dataclass(frozen=True)
class Audience:
    """Who may enter: bounds on the scores the touchpoint already receives (None: unbounded)."""

    min_trust: float | None = None
    max_trust: float | None = None
    min_ltv: float | None = None
    max_ltv: float | None = None

    def admits(self, trust: float, ltv: float) -> bool:
        return (
            (self.min_trust is None or trust >= self.min_trust)
            and (self.max_trust is None or trust <= self.max_trust)
            and (self.min_ltv is None or ltv >= self.min_ltv)
            and (self.max_ltv is None or ltv <= self.max_ltv)
        )


@dataclass(frozen=True)
class Arm:
    name: str
    action: str  # the policy action this arm answers with
    weight: float


@dataclass(frozen=True)
class PrimaryMetric:
    """One goal, one metric. ``baseline`` is the control's expected conversion rate (conversion)
    or mean value (mean value), ``baseline_sd`` the per-customer standard deviation of the value;
    both only size the experiment, the test never assumes them."""

    outcome: str
    window: timedelta
    kind: MetricKind
    baseline: float
    baseline_sd: float | None = None


@dataclass(frozen=True)
class Layer:
    name: str
    salt: bytes


@dataclass(frozen=True)
class Experiment:
    """``mde`` is an absolute difference in the metric (e.g. 0.02 = two conversion points);
    ``buckets`` is the half-open range [start, stop) of the layer's 10,000 buckets it owns.
    The first arm is the control."""

    id: str
    touchpoint: str
    audience: Audience
    arms: tuple[Arm, ...]
    metric: PrimaryMetric
    mde: float
    alpha: float
    layer: Layer
    buckets: tuple[int, int]
    salt: bytes

    def __post_init__(self) -> None:
        if len(self.arms) < 2:
            raise InvalidInput(f"experiment {self.id}: needs at least two arms")
        if len({arm.name for arm in self.arms}) != len(self.arms):
            raise InvalidInput(f"experiment {self.id}: arm names must differ")
        if any(arm.weight <= 0 for arm in self.arms):
            raise InvalidInput(f"experiment {self.id}: every arm's weight must be positive")
        if not 0 < self.alpha < 1:
            raise InvalidInput(f"experiment {self.id}: alpha must lie in (0, 1)")
        if self.mde <= 0:
            raise InvalidInput(f"experiment {self.id}: the minimum detectable effect must be > 0")
        start, stop = self.buckets
        if not 0 <= start < stop <= BUCKETS:
            raise InvalidInput(
                f"experiment {self.id}: buckets must be a range within [0, {BUCKETS})"
            )
        if self.metric.kind is MetricKind.MEAN_VALUE and not self.metric.baseline_sd:
            raise InvalidInput(f"experiment {self.id}: a mean-value metric needs baseline_sd")

    @property
    def weights(self) -> tuple[float, ...]:
        total = sum(arm.weight for arm in self.arms)
        return tuple(arm.weight / total for arm in self.arms)


def check_layer(experiments: list[Experiment]) -> None:
    """Experiments of one layer must own disjoint bucket ranges (so they never share a customer)."""
    by_layer: dict[str, list[Experiment]] = {}
    for experiment in experiments:
        by_layer.setdefault(experiment.layer.name, []).append(experiment)
    for layer, members in by_layer.items():
        ordered = sorted(members, key=lambda e: e.buckets)
        for before, after in pairwise(ordered):
            if after.buckets[0] < before.buckets[1]:
                raise InvalidInput(
                    f"layer {layer}: experiments {before.id} and {after.id} overlap in buckets "
                    f"{after.buckets[0]}..{before.buckets[1] - 1}"
                )
