"""LTV metrics on a cohort: aggregate spend error, decile MAPE, normalized Gini, Spearman.

Definitions (they reproduce DESIGN.md's BG/NBD reference numbers on CDNOW):

- aggregate error (%) = ``100 * (sum predicted - sum actual) / sum actual``;
- decile MAPE (%): customers sorted by predicted spend, ascending (ties keep input order), cut
  into 10 groups with :func:`numpy.array_split`; the mean over groups of
  ``|sum predicted - sum actual| / sum actual``, times 100;
- normalized Gini: the Gini of actual spend ordered by predicted spend (descending, ties keep
  input order), divided by the Gini of the perfect ordering;
- Spearman: rank correlation of predicted and actual spend (ties get average ranks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from accord.errors import InvalidInput

DECILES = 10

__all__ = [
    "DECILES",
    "DecileTable",
    "LtvMetrics",
    "aggregate_error_pct",
    "decile_chart",
    "decile_mape_pct",
    "decile_table",
    "ltv_metrics",
    "normalized_gini",
    "spearman",
]


@dataclass(frozen=True)
class LtvMetrics:
    """The four numbers ``accord bench ltv`` reports for one model on one cohort."""

    aggregate_error_pct: float
    decile_mape_pct: float
    gini: float
    spearman: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def beats(self, other: LtvMetrics) -> bool:
        """Better than ``other`` on all four: smaller |aggregate|, MAPE; larger Gini, Spearman."""
        return (
            abs(self.aggregate_error_pct) < abs(other.aggregate_error_pct)
            and self.decile_mape_pct < other.decile_mape_pct
            and self.gini > other.gini
            and self.spearman > other.spearman
        )


@dataclass(frozen=True)
class DecileTable:
    """Summed predicted and actual spend per decile of predicted spend, lowest first."""

    predicted: np.ndarray
    actual: np.ndarray
    sizes: np.ndarray


def _pair(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=float).ravel()
    a = np.asarray(actual, dtype=float).ravel()
    if p.shape != a.shape:
        raise InvalidInput(f"{len(p)} predictions for {len(a)} actual values")
    if len(p) < 2:
        raise InvalidInput("LTV metrics need at least two customers")
    if not (np.isfinite(p).all() and np.isfinite(a).all()):
        raise InvalidInput("predicted and actual spend must be finite")
    if (a < 0).any():
        raise InvalidInput("actual spend cannot be negative")
    if a.sum() <= 0:
        raise InvalidInput("the cohort spent nothing: relative errors are undefined")
    return p, a


def aggregate_error_pct(predicted: np.ndarray, actual: np.ndarray) -> float:
    p, a = _pair(predicted, actual)
    return float(100.0 * (p.sum() - a.sum()) / a.sum())


def decile_table(predicted: np.ndarray, actual: np.ndarray, groups: int = DECILES) -> DecileTable:
    p, a = _pair(predicted, actual)
    if len(p) < groups:
        raise InvalidInput(f"{groups} groups need at least {groups} customers")
    parts = np.array_split(np.argsort(p, kind="stable"), groups)
    return DecileTable(
        predicted=np.array([p[i].sum() for i in parts]),
        actual=np.array([a[i].sum() for i in parts]),
        sizes=np.array([len(i) for i in parts]),
    )


def decile_mape_pct(predicted: np.ndarray, actual: np.ndarray) -> float:
    table = decile_table(predicted, actual)
    if (table.actual <= 0).any():
        empty = [str(i + 1) for i in np.flatnonzero(table.actual <= 0)]
        raise InvalidInput(
            f"decile(s) {', '.join(empty)} of predicted spend spent nothing: "
            "decile MAPE is undefined on this cohort (use a larger one)"
        )
    return float(100.0 * np.mean(np.abs(table.predicted - table.actual) / table.actual))


def _gini(actual: np.ndarray, order: np.ndarray) -> float:
    shares = np.cumsum(actual[order]) / actual.sum()
    n = len(actual)
    return float(shares.sum() / n - (n + 1) / (2 * n))


def normalized_gini(predicted: np.ndarray, actual: np.ndarray) -> float:
    p, a = _pair(predicted, actual)
    best = _gini(a, np.argsort(-a, kind="stable"))
    return _gini(a, np.argsort(-p, kind="stable")) / best


def spearman(predicted: np.ndarray, actual: np.ndarray) -> float:
    p, a = _pair(predicted, actual)
    if np.ptp(p) == 0 or np.ptp(a) == 0:
        return 0.0  # a constant ranks nothing
    return float(spearmanr(p, a).statistic)


def ltv_metrics(predicted: np.ndarray, actual: np.ndarray) -> LtvMetrics:
    return LtvMetrics(
        aggregate_error_pct=aggregate_error_pct(predicted, actual),
        decile_mape_pct=decile_mape_pct(predicted, actual),
        gini=normalized_gini(predicted, actual),
        spearman=spearman(predicted, actual),
    )


def decile_chart(
    path: Path,
    models: dict[str, np.ndarray],
    actual: np.ndarray,
    title: str = "Holdout spend per decile of predicted spend",
) -> Path:
    """Write a PNG: for each model, summed predicted vs actual spend per decile of its own
    predictions (one panel per model)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if not models:
        raise InvalidInput("a decile chart needs at least one model")
    fig, axes = plt.subplots(
        1, len(models), figsize=(4.2 * len(models), 3.6), sharey=True, squeeze=False
    )
    x = np.arange(1, DECILES + 1)
    for ax, (name, predicted) in zip(axes[0], models.items(), strict=True):
        table = decile_table(predicted, actual)
        ax.bar(x - 0.2, table.actual, width=0.4, label="actual", color="#4c72b0")
        ax.bar(x + 0.2, table.predicted, width=0.4, label="predicted", color="#dd8452")
        ax.set_title(name)
        ax.set_xlabel("decile of predicted spend")
        ax.set_xticks(x)
    axes[0][0].set_ylabel("holdout spend ($, log scale)")
    axes[0][0].set_yscale("log")
    axes[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
