"""The sample-ratio-mismatch check and the recommendation a report ends with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from scipy.stats import chisquare

SRM_THRESHOLD = 0.001  # p below this: the arms' counts do not fit the declared weights


@dataclass(frozen=True)
class SampleRatio:
    counts: tuple[int, ...]
    expected: tuple[float, ...]
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_THRESHOLD


def sample_ratio(counts: Sequence[int], weights: Sequence[float]) -> SampleRatio:
    """Pearson's χ² goodness of fit of the arms' customer counts to the declared weights. A
    mismatch means assignment or logging is broken, and no effect estimate can be trusted."""
    total = sum(counts)
    weight_sum = sum(weights)
    expected = tuple(total * w / weight_sum for w in weights)
    if total == 0:
        return SampleRatio(tuple(counts), expected, 1.0)
    result = chisquare(list(counts), list(expected))
    return SampleRatio(tuple(counts), expected, float(result.pvalue))


class Action(StrEnum):
    CONTINUE = "continue"
    SHIP = "ship"
    STOP_NO_EFFECT = "stop-no-effect"
    STOP_KEEP_CONTROL = "stop-keep-control"
    STOP_SAMPLE_RATIO = "stop-sample-ratio-mismatch"


@dataclass(frozen=True)
class ArmResult:
    """One arm against the control at the latest peek."""

    arm: str
    effect: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class Recommendation:
    action: Action
    arm: str | None
    reason: str


def recommend(
    results: Sequence[ArmResult],
    srm: SampleRatio,
    customers: int,
    declared_sample: int,
    alpha: float,
) -> Recommendation:
    """Ship the best arm whose always-valid p-value beats α (Bonferroni over the arms) with a
    positive interval; keep the control when every significant arm is worse; stop with no effect
    once the declared sample size is reached; otherwise continue. A sample-ratio mismatch
    overrides everything: the numbers are not trustworthy."""
    if srm.mismatch:
        return Recommendation(
            Action.STOP_SAMPLE_RATIO,
            None,
            f"arm counts {list(srm.counts)} do not fit the declared weights "
            f"(χ² p = {srm.p_value:.2g} < {SRM_THRESHOLD}): fix assignment before reading effects",
        )
    level = alpha / max(1, len(results))
    winners = [r for r in results if r.p_value <= level and r.low > 0]
    if winners:
        best = max(winners, key=lambda r: r.effect)
        return Recommendation(
            Action.SHIP,
            best.arm,
            f"{best.arm} beats the control by {best.effect:+.4g} "
            f"[{best.low:.4g}, {best.high:.4g}], p = {best.p_value:.3g} ≤ {level:.3g}",
        )
    losers = [r for r in results if r.p_value <= level and r.high < 0]
    if results and len(losers) == len(results):
        return Recommendation(
            Action.STOP_KEEP_CONTROL, None, "every arm is significantly worse than the control"
        )
    if customers >= declared_sample:
        return Recommendation(
            Action.STOP_NO_EFFECT,
            None,
            f"declared sample size {declared_sample} reached with no arm significant "
            f"at {level:.3g}",
        )
    return Recommendation(
        Action.CONTINUE, None, f"{customers} of {declared_sample} customers; no arm significant yet"
    )
