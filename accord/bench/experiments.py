"""`accord bench experiments`: the always-valid test's error rates on the seeded market.

Two metrics, each with two batteries of seeded experiments (control and one arm, 50/50):

- A/A: both arms convert and spend alike; the test is run after every ``peek_every`` arrivals up
  to the declared sample size, and a run is a false positive if its always-valid p-value falls to
  α at any peek. ``*_false_positive_rate`` must stay ≤ α within its binomial error
  (``*_fpr_upper95`` is the Clopper-Pearson 95% upper bound).
- A/B: the arm's true effect is exactly the declared MDE; ``power`` is the share of runs whose
  p-value reaches α (in the right direction) by the declared sample size, which is the size the
  always-valid test needs (``declared_sample``), not the fixed-horizon textbook's
  (``fixed_horizon_sample``, shown beside it for the price of peeking).

Conversion: 10% baseline, MDE +3 points. Mean value (spend per customer, 0 without a purchase):
the same 10% conversion with a lognormal basket of mean 50, MDE +1.5 per customer (the basket
grows to 65). The keys without a prefix are the conversion test's; ``mean_*`` the mean-value
test's. ``srm_*``: the sample-ratio check on the real hash assignment of 20,000 references,
honest and with 5% of the arm's customers moved to the control, and its flag rate over the A/A
battery (expected ≈ its threshold, 0.001). ``*naive_peeking_aa_fpr``: the same A/A runs read
with a fixed-horizon two-sided z-test at every peek, the false positives the sequential test
exists to prevent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from rich.progress import Progress
from scipy.stats import beta, norm

from accord.experiments.checks import SRM_THRESHOLD, sample_ratio
from accord.experiments.declaration import (
    Arm,
    Audience,
    Experiment,
    Layer,
    MetricKind,
    PrimaryMetric,
)
from accord.experiments.market import ArmTruth, Market, battery, metric_values, sums_at_peeks
from accord.experiments.planning import fixed_horizon_per_arm, sequential_total
from accord.experiments.sequential import difference, mixture_variance, running_p

ALPHA = 0.05
CHUNK = 50  # experiments simulated at once: bounds memory at ~CHUNK × sample × 8 bytes × a few
CONTROL = ArmTruth(conversion_rate=0.10, mean_spend=50.0)


@dataclass(frozen=True)
class Scenario:
    kind: MetricKind
    mde: float
    treated: ArmTruth

    def experiment(self) -> Experiment:
        baseline = (
            CONTROL.conversion_rate if self.kind is MetricKind.CONVERSION else CONTROL.value_mean
        )
        return Experiment(
            id=f"bench-{self.kind.value}",
            touchpoint="checkout",
            audience=Audience(),
            arms=(Arm("control", "offer_none", 1.0), Arm("treated", "offer_trial", 1.0)),
            metric=PrimaryMetric(
                "purchase", timedelta(days=7), self.kind, baseline, CONTROL.value_sd
            ),
            mde=self.mde,
            alpha=ALPHA,
            layer=Layer("bench", b"bench-layer"),
            buckets=(0, 10_000),
            salt=f"bench-{self.kind.value}".encode(),
        )


SCENARIOS = (
    Scenario(MetricKind.CONVERSION, 0.03, ArmTruth(0.13, 50.0)),
    Scenario(MetricKind.MEAN_VALUE, 1.5, ArmTruth(0.10, 65.0)),
)


def clopper_pearson_upper(successes: int, trials: int, level: float = 0.95) -> float:
    """The one-sided upper bound of a binomial proportion at ``level``."""
    if successes >= trials:
        return 1.0
    return float(beta.ppf(level, successes + 1, trials - successes))


def _battery(
    rng: np.random.Generator,
    scenario: Scenario,
    truths: list[ArmTruth],
    runs: int,
    sample: int,
    every: int,
    progress: Progress,
    label: str,
) -> tuple[int, int, int, int]:
    """Runs rejected (any sign), rejected with a positive effect, SRM-flagged, and rejected by a
    fixed-horizon z-test read at every peek (what peeking does to a classical test)."""
    experiment = scenario.experiment()
    tau2 = mixture_variance(scenario.mde)
    task = progress.add_task(label, total=runs)
    rejected = positive = srm_flagged = naive = 0
    for start in range(0, runs, CHUNK):
        size = min(CHUNK, runs - start)
        arm, converted, value = battery(rng, size, sample, experiment.weights, truths)
        values = metric_values(scenario.kind, converted, value)
        control = sums_at_peeks(arm, values, 0, every)
        treated = sums_at_peeks(arm, values, 1, every)
        effect, variance = difference(scenario.kind, control, treated)
        p = running_p(effect, variance, tau2)
        hit = p <= ALPHA
        any_hit = hit.any(axis=-1)
        first = hit.argmax(axis=-1)
        sign_at_first = effect[np.arange(size), first] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(effect) / np.sqrt(variance)
        naive += int((np.nan_to_num(2 * norm.sf(z), nan=1.0) <= ALPHA).any(axis=-1).sum())
        rejected += int(any_hit.sum())
        positive += int((any_hit & sign_at_first).sum())
        for row in range(size):
            counts = [int(control.n[row, -1]), int(treated.n[row, -1])]
            srm_flagged += sample_ratio(counts, experiment.weights).mismatch
        progress.advance(task, size)
    return rejected, positive, srm_flagged, naive


def _srm_on_hashes(seed: int) -> tuple[float, float]:
    """The check on real hash assignment: honest, then 5% of the arm's customers moved."""
    scenario = SCENARIOS[0]
    experiment = scenario.experiment()
    observed = Market(seed).run(experiment, {"control": CONTROL, "treated": CONTROL}, 20_000)
    control = observed.arms.count("control")
    treated = observed.arms.count("treated")
    honest = sample_ratio([control, treated], experiment.weights).p_value
    moved = treated // 20
    tampered = sample_ratio([control + moved, treated - moved], experiment.weights).p_value
    return honest, tampered


def run_experiments_bench(
    aa_runs: int, ab_runs: int, peek_every: int, seed: int, progress: Progress
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    result: dict[str, object] = {
        "alpha": ALPHA,
        "aa_runs": aa_runs,
        "ab_runs": ab_runs,
        "peek_every": peek_every,
        "seed": seed,
        "srm_threshold": SRM_THRESHOLD,
        "test": "mSPRT, normal mixture (tau = MDE), always-valid p-value",
    }
    for scenario in SCENARIOS:
        experiment = scenario.experiment()
        declared = sequential_total(experiment)
        declared = -(-declared // peek_every) * peek_every  # the last peek lands on it
        fixed = 2 * fixed_horizon_per_arm(
            scenario.kind,
            experiment.metric.baseline,
            scenario.mde,
            ALPHA,
            baseline_sd=CONTROL.value_sd,
        )
        name = "conversion" if scenario.kind is MetricKind.CONVERSION else "mean value"
        aa, _, srm_flags, naive = _battery(
            rng,
            scenario,
            [CONTROL, CONTROL],
            aa_runs,
            declared,
            peek_every,
            progress,
            f"A/A {name}",
        )
        ab, ab_positive, _, _ = _battery(
            rng,
            scenario,
            [CONTROL, scenario.treated],
            ab_runs,
            declared,
            peek_every,
            progress,
            f"A/B {name}",
        )
        prefix = "" if scenario.kind is MetricKind.CONVERSION else "mean_"
        result.update(
            {
                f"{prefix}mde": scenario.mde,
                f"{prefix}declared_sample": declared,
                f"{prefix}fixed_horizon_sample": fixed,
                f"{prefix}aa_false_positive_rate": aa / aa_runs,
                f"{prefix}aa_fpr_upper95": round(clopper_pearson_upper(aa, aa_runs), 4),
                f"{prefix}naive_peeking_aa_fpr": naive / aa_runs,
                f"{prefix}power": ab_positive / ab_runs,
                f"{prefix}power_any_sign": ab / ab_runs,
            }
        )
        if scenario.kind is MetricKind.CONVERSION:
            result["aa_srm_flag_rate"] = srm_flags / aa_runs
    honest, tampered = _srm_on_hashes(seed)
    result["srm_honest_p"] = round(honest, 4)
    result["srm_tampered_p"] = float(f"{tampered:.3g}")
    return result
