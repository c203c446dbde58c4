"""An experiment's peeks, the plain-text report table and the effect-over-time PNG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from accord.experiments.checks import (
    ArmResult,
    Recommendation,
    SampleRatio,
    recommend,
    sample_ratio,
)
from accord.experiments.declaration import Experiment, MetricKind
from accord.experiments.market import sums_at_peeks
from accord.experiments.sequential import (
    difference,
    mixture_variance,
    running_interval,
    running_p,
)


@dataclass(frozen=True)
class Peek:
    customers: int
    effect: float
    low: float
    high: float
    p_value: float


def peek_history(
    kind: MetricKind,
    arm_index: NDArray[np.int8],
    values: NDArray[np.float64],
    arm: int,
    every: int,
    tau2: float,
    alpha: float,
) -> list[Peek]:
    """One arm against the control (arm 0), looked at after every ``every`` arrivals."""
    control = sums_at_peeks(arm_index, values, 0, every)
    treated = sums_at_peeks(arm_index, values, arm, every)
    effect, variance = difference(kind, control, treated)
    p = running_p(effect, variance, tau2)
    low, high = running_interval(effect, variance, tau2, alpha)
    return [
        Peek((i + 1) * every, float(effect[i]), float(low[i]), float(high[i]), float(p[i]))
        for i in range(len(effect))
    ]


@dataclass(frozen=True)
class Analysis:
    """Everything a report shows: per arm (customers, metric mean), each treated arm against the
    control at the last peek and over time, the sample-ratio check and the recommendation."""

    counts: list[tuple[str, int, float]]
    results: list[ArmResult]
    history: dict[str, list[Peek]]
    srm: SampleRatio
    recommendation: Recommendation


def analyse(
    experiment: Experiment,
    arms: Sequence[str],
    values: NDArray[np.float64],
    every: int,
    declared_sample: int,
) -> Analysis:
    """The experiment's customers in arrival order (their arm and metric value) read as a
    marketer peeking every ``every`` arrivals would; each treated arm is tested against the first
    (the control) at α divided by the number of treated arms, so the report's claims hold jointly.
    """
    names = [arm.name for arm in experiment.arms]
    position = {name: i for i, name in enumerate(names)}
    index = np.array([position[a] for a in arms], dtype=np.int8)
    level = experiment.alpha / (len(names) - 1)
    tau2 = mixture_variance(experiment.mde)
    kind = experiment.metric.kind
    counts = []
    for i, name in enumerate(names):
        mine = values[index == i]
        counts.append((name, len(mine), float(mine.mean()) if len(mine) else float("nan")))
    results, history = [], {}
    for i, name in enumerate(names[1:], start=1):
        peeks = (
            peek_history(kind, index, values, i, every, tau2, level) if len(arms) >= every else []
        )
        history[name] = peeks
        if peeks:
            last = peeks[-1]
            results.append(ArmResult(name, last.effect, last.low, last.high, last.p_value))
    srm = sample_ratio([n for _, n, _ in counts], experiment.weights)
    advice = recommend(results, srm, len(arms), declared_sample, experiment.alpha)
    return Analysis(counts, results, history, srm, advice)


def report_table(
    experiment_id: str,
    counts: Sequence[tuple[str, int, float]],
    results: Sequence[ArmResult],
    srm: SampleRatio,
    recommendation: Recommendation,
) -> str:
    """Arms with customers and metric mean, each arm's effect with its always-valid interval and
    p-value, the SRM verdict and the recommendation, as fixed-width text."""
    lines = [f"experiment {experiment_id}", ""]
    lines.append(f"{'arm':<16}{'customers':>10}{'mean':>12}{'effect':>12}{'interval':>26}{'p':>9}")
    by_arm = {r.arm: r for r in results}
    for name, n, mean in counts:
        r = by_arm.get(name)
        if r is None:
            lines.append(f"{name:<16}{n:>10}{mean:>12.4g}{'(control)':>12}")
        else:
            interval = f"[{r.low:.4g}, {r.high:.4g}]"
            lines.append(
                f"{name:<16}{n:>10}{mean:>12.4g}{r.effect:>+12.4g}{interval:>26}{r.p_value:>9.3g}"
            )
    verdict = "MISMATCH" if srm.mismatch else "ok"
    lines += ["", f"sample ratio: {verdict} (χ² p = {srm.p_value:.3g})"]
    arm = f" {recommendation.arm}" if recommendation.arm else ""
    lines.append(f"recommendation: {recommendation.action.value}{arm} — {recommendation.reason}")
    return "\n".join(lines) + "\n"


def render_effect_png(
    path: Path,
    title: str,
    peeks: Sequence[Peek],
    mde: float | None = None,
    alpha: float | None = None,
) -> None:
    """The effect and its always-valid interval over the customers seen, with zero (and the MDE,
    and the first peek whose p-value reached α). The first peeks' intervals are very wide; the
    vertical axis is fitted to the later nine tenths so the effect stays readable."""
    from matplotlib.figure import Figure  # matplotlib only when a chart is drawn

    x = [p.customers for p in peeks]
    finite = [(p.customers, p.low, p.high) for p in peeks if np.isfinite(p.low + p.high)]
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    if finite:
        fx, flow, fhigh = zip(*finite, strict=True)
        axes.fill_between(fx, flow, fhigh, alpha=0.25, label="always-valid interval")
    axes.plot(x, [p.effect for p in peeks], label="effect")
    axes.axhline(0.0, color="black", linewidth=0.8)
    if mde is not None:
        axes.axhline(mde, color="grey", linestyle="--", linewidth=0.8, label="MDE")
    if alpha is not None:
        crossed = next((p.customers for p in peeks if p.p_value <= alpha), None)
        if crossed is not None:
            axes.axvline(crossed, color="green", linestyle=":", label=f"p ≤ {alpha:g}")
    settled = finite[len(finite) // 10 :]
    if settled:
        low = min(min(f[1] for f in settled), 0.0, mde or 0.0)
        high = max(max(f[2] for f in settled), 0.0, mde or 0.0)
        pad = 0.1 * (high - low) or 1.0
        axes.set_ylim(low - pad, high + pad)
    axes.set_xlabel("customers")
    axes.set_ylabel("effect vs control")
    axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, format="png")
