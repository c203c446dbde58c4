"""Experiments (issue 21, items 4-5): layered assignment, the sample-ratio check, the always-valid
test's error rates on the seeded market, sample sizes, the recommendation and the report."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from accord.errors import InvalidInput
from accord.experiments.assignment import assign, layer_bucket
from accord.experiments.checks import (
    Action,
    ArmResult,
    recommend,
    sample_ratio,
)
from accord.experiments.declaration import (
    Arm,
    Audience,
    Experiment,
    Layer,
    MetricKind,
    PrimaryMetric,
    check_layer,
)
from accord.experiments.market import ArmTruth, Market, battery, metric_values, sums_at_peeks
from accord.experiments.planning import fixed_horizon_per_arm, sequential_total
from accord.experiments.report import analyse, peek_history, render_effect_png, report_table
from accord.experiments.sequential import difference, mixture_variance, running_p

LAYER = Layer("checkout", b"layer-salt-checkout")
CONTROL = ArmTruth(0.10, 50.0)


def _experiment(
    ident: str,
    buckets: tuple[int, int] = (0, 10_000),
    weights: tuple[float, float] = (1.0, 1.0),
    mde: float = 0.03,
    layer: Layer = LAYER,
) -> Experiment:
    return Experiment(
        id=ident,
        touchpoint="checkout",
        audience=Audience(min_trust=0.2),
        arms=(Arm("A", "offer_none", weights[0]), Arm("B", "offer_trial", weights[1])),
        metric=PrimaryMetric("purchase", timedelta(days=7), MetricKind.CONVERSION, 0.10),
        mde=mde,
        alpha=0.05,
        layer=layer,
        buckets=buckets,
        salt=f"salt-{ident}".encode(),
    )


def _rejections(
    truths: list[ArmTruth], runs: int, sample: int, mde: float, seed: int
) -> tuple[int, int]:
    """A battery of conversion experiments peeked every 100 arrivals: rejected, rejected upward."""
    arm, converted, value = battery(np.random.default_rng(seed), runs, sample, (0.5, 0.5), truths)
    values = metric_values(MetricKind.CONVERSION, converted, value)
    effect, variance = difference(
        MetricKind.CONVERSION,
        sums_at_peeks(arm, values, 0, 100),
        sums_at_peeks(arm, values, 1, 100),
    )
    hit = running_p(effect, variance, mixture_variance(mde)) <= 0.05
    first = hit.argmax(axis=-1)
    upward = effect[np.arange(runs), first] > 0
    return int(hit.any(axis=-1).sum()), int((hit.any(axis=-1) & upward).sum())


def test_assignment_is_deterministic_and_layers_never_share_a_customer() -> None:
    first = _experiment("trial-length", buckets=(0, 5_000))
    second = _experiment("subject-line", buckets=(5_000, 10_000))
    check_layer([first, second])
    keys = Market(1).references(4_000)
    arms_first = [assign(first, key) for key in keys]
    assert arms_first == [assign(first, key) for key in keys]  # same customer, same arm
    arms_second = [assign(second, key) for key in keys]
    assert all(a is None or b is None for a, b in zip(arms_first, arms_second, strict=True))
    assert all(a is not None or b is not None for a, b in zip(arms_first, arms_second, strict=True))
    # each owns about half the layer, and within it both arms are used
    entered = [a for a in arms_first if a is not None]
    assert 1_800 < len(entered) < 2_200
    assert {"A", "B"} == set(entered)
    # another layer's buckets are independent of this one's
    other = Layer("email", b"layer-salt-email")
    same = sum(
        (layer_bucket(LAYER.salt, k) < 5_000) == (layer_bucket(other.salt, k) < 5_000) for k in keys
    )
    assert 1_800 < same < 2_200


def test_overlapping_experiments_in_one_layer_are_refused() -> None:
    with pytest.raises(InvalidInput, match="overlap"):
        check_layer(
            [_experiment("a", buckets=(0, 6_000)), _experiment("b", buckets=(5_000, 9_000))]
        )
    # different layers may use the same buckets
    check_layer([_experiment("a"), _experiment("b", layer=Layer("email", b"other"))])


def test_sample_ratio_mismatch_is_flagged_when_assignment_is_tampered() -> None:
    experiment = _experiment("srm", weights=(1.0, 1.0))
    observed = Market(7).run(experiment, {"A": CONTROL, "B": CONTROL}, 20_000)
    counts = [observed.arms.count("A"), observed.arms.count("B")]
    honest = sample_ratio(counts, experiment.weights)
    assert not honest.mismatch
    moved = counts[1] // 20  # 5% of B's customers shown A
    tampered = sample_ratio([counts[0] + moved, counts[1] - moved], experiment.weights)
    assert tampered.mismatch
    # unequal declared weights are respected: a 80/20 split honest is fine, 50/50 is not
    skewed = _experiment("skew", weights=(4.0, 1.0))
    observed = Market(8).run(skewed, {"A": CONTROL, "B": CONTROL}, 10_000)
    counts = [observed.arms.count("A"), observed.arms.count("B")]
    assert not sample_ratio(counts, skewed.weights).mismatch
    assert sample_ratio([5_000, 5_000], skewed.weights).mismatch


def test_aa_false_positive_rate_under_continuous_peeking_stays_within_alpha() -> None:
    runs = 300
    rejected, _ = _rejections([CONTROL, CONTROL], runs, 4_000, 0.03, seed=11)
    # binomial slack: alpha + 2.5 standard errors at n = 300 is ~0.082
    slack = 2.5 * np.sqrt(0.05 * 0.95 / runs)
    assert rejected / runs <= 0.05 + slack


def test_power_on_a_clearly_effective_arm() -> None:
    runs = 100
    _, upward = _rejections([CONTROL, ArmTruth(0.16, 50.0)], runs, 4_000, 0.03, seed=12)
    assert upward / runs >= 0.9


def test_sample_sizes_match_the_textbook() -> None:
    # two proportions 0.4 vs 0.6, α = 0.05 two-sided, power 0.8: Fleiss (no continuity) gives 97;
    # a standardised mean difference of 0.5 gives 63 per group (normal approximation).
    assert fixed_horizon_per_arm(MetricKind.CONVERSION, 0.4, 0.2, 0.05) == 97
    assert fixed_horizon_per_arm(MetricKind.MEAN_VALUE, 10.0, 0.5, 0.05, baseline_sd=1.0) == 63
    # the always-valid test pays for peeking with a larger sample than the fixed horizon's
    experiment = _experiment("size")
    fixed_total = 2 * fixed_horizon_per_arm(MetricKind.CONVERSION, 0.10, 0.03, 0.05)
    assert fixed_total < sequential_total(experiment) < 3 * fixed_total


def test_recommendation_and_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    arm, converted, value = battery(rng, 1, 6_000, (0.5, 0.5), [CONTROL, ArmTruth(0.16, 50.0)])
    values = metric_values(MetricKind.CONVERSION, converted, value)
    peeks = peek_history(MetricKind.CONVERSION, arm[0], values[0], 1, 100, 0.03**2, 0.05)
    last = peeks[-1]
    assert last.low <= last.effect <= last.high
    assert all(a.low <= b.low and a.high >= b.high for a, b in pairwise(peeks))
    result = ArmResult("B", last.effect, last.low, last.high, last.p_value)
    counts = [int((arm[0] == i).sum()) for i in (0, 1)]
    srm = sample_ratio(counts, (0.5, 0.5))
    shipped = recommend([result], srm, 6_000, 8_000, 0.05)
    assert shipped.action is Action.SHIP and shipped.arm == "B"
    # tampered counts override a winner; nothing significant at the declared size stops
    assert (
        recommend([result], sample_ratio([3_300, 2_700], (0.5, 0.5)), 6_000, 8_000, 0.05).action
        is Action.STOP_SAMPLE_RATIO
    )
    flat = ArmResult("B", 0.001, -0.01, 0.012, 0.9)
    assert recommend([flat], srm, 6_000, 8_000, 0.05).action is Action.CONTINUE
    assert recommend([flat], srm, 8_000, 8_000, 0.05).action is Action.STOP_NO_EFFECT

    table = report_table(
        "trial-length",
        [
            ("A", counts[0], float(values[0][arm[0] == 0].mean())),
            ("B", counts[1], float(values[0][arm[0] == 1].mean())),
        ],
        [result],
        srm,
        shipped,
    )
    assert "recommendation: ship B" in table and "sample ratio: ok" in table
    png = tmp_path / "effect.png"
    render_effect_png(png, "trial-length: B vs A", peeks, mde=0.03)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000


def test_analysis_of_a_hash_assigned_three_arm_experiment(tmp_path: Path) -> None:
    experiment = Experiment(
        id="cta-copy",
        touchpoint="checkout",
        audience=Audience(),
        arms=(Arm("A", "copy_a", 1.0), Arm("B", "copy_b", 1.0), Arm("C", "copy_c", 1.0)),
        metric=PrimaryMetric("purchase", timedelta(days=7), MetricKind.CONVERSION, 0.10),
        mde=0.03,
        alpha=0.05,
        layer=LAYER,
        buckets=(0, 10_000),
        salt=b"salt-cta-copy",
    )
    truths = {"A": CONTROL, "B": CONTROL, "C": ArmTruth(0.17, 50.0)}
    observed = Market(3).run(experiment, truths, 12_000)
    values = metric_values(MetricKind.CONVERSION, observed.converted, observed.value)
    analysis = analyse(experiment, observed.arms, values, 100, sequential_total(experiment))
    assert not analysis.srm.mismatch
    assert analysis.recommendation.action is Action.SHIP
    assert analysis.recommendation.arm == "C"
    by_arm = {r.arm: r for r in analysis.results}
    assert by_arm["C"].low > 0 and by_arm["B"].low < 0 < by_arm["B"].high
    table = report_table(
        "cta-copy", analysis.counts, analysis.results, analysis.srm, analysis.recommendation
    )
    assert table.count("\n") >= 7 and "ship C" in table
    png = tmp_path / "cta.png"
    render_effect_png(png, "cta-copy: C vs A", analysis.history["C"], mde=experiment.mde)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
