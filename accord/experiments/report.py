"""An experiment's peeks, the plain-text report table and the effect-over-time PNG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from accord.experiments.checks import ArmResult, Recommendation, SampleRatio
from accord.experiments.declaration import MetricKind
from accord.experiments.market import sums_at_peeks
from accord.experiments.sequential import difference, running_interval, running_p


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
    path: Path, title: str, peeks: Sequence[Peek], mde: float | None = None
) -> None:
    """The effect and its always-valid interval over the customers seen, with zero (and the MDE)."""
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
    axes.set_xlabel("customers")
    axes.set_ylabel("effect vs control")
    axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, format="png")
