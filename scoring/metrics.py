"""Model metrics for the trust head: AUC, expected calibration error, calibration curves.

Everything here is a pure function of labels and scores; :func:`plot_calibration` writes a PNG
with matplotlib's Agg canvas (no pyplot, no display, no global state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from accord.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

ECE_BINS = 10
"""Bins of :func:`expected_calibration_error` (equal width on [0, 1]), as DESIGN.md fixes."""


def _labels_and_probs(labels: npt.ArrayLike, probs: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise InvalidInput(f"{y.size} labels but {p.size} scores: they must pair up")
    if y.size == 0:
        raise InvalidInput("no rows to evaluate")
    if not np.isin(y, (0.0, 1.0)).all():
        raise InvalidInput("labels must be 0 or 1")
    if not np.isfinite(p).all():
        raise InvalidInput("scores must be finite numbers")
    return y, p


def _check_probs(p: FloatArray) -> None:
    if p.min() < 0.0 or p.max() > 1.0:
        raise InvalidInput("probabilities must lie in [0, 1]")


def auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (scikit-learn); scores may be logits or probabilities."""
    y, s = _labels_and_probs(labels, scores)
    if y.min() == y.max():
        raise InvalidInput("AUC needs both classes among the labels")
    return float(roc_auc_score(y, s))


@dataclass(frozen=True)
class CalibrationCurve:
    """Reliability diagram data: per equal-width bin of predicted probability.

    Empty bins are kept with ``count`` 0 and NaN means, so every curve has ``bins`` entries.
    """

    edges: tuple[float, ...]
    mean_predicted: tuple[float, ...]
    fraction_positive: tuple[float, ...]
    count: tuple[int, ...]

    @property
    def bins(self) -> int:
        return len(self.count)

    def ece(self) -> float:
        """Expected calibration error: ``Σ_b n_b/N · |fraction_positive_b − mean_predicted_b|``."""
        total = sum(self.count)
        err = 0.0
        for n, p, f in zip(self.count, self.mean_predicted, self.fraction_positive, strict=True):
            if n:
                err += n / total * abs(f - p)
        return err


def calibration_curve(
    labels: npt.ArrayLike, probs: npt.ArrayLike, bins: int = ECE_BINS
) -> CalibrationCurve:
    """Bin predictions into ``bins`` equal-width bins on [0, 1] (the last bin includes 1)."""
    if bins < 1:
        raise InvalidInput("a calibration curve needs at least one bin")
    y, p = _labels_and_probs(labels, probs)
    _check_probs(p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / np.maximum(count, 1), np.nan)
        frac = np.where(count > 0, sum_y / np.maximum(count, 1), np.nan)
    return CalibrationCurve(
        edges=tuple(float(e) for e in edges),
        mean_predicted=tuple(float(v) for v in mean_p),
        fraction_positive=tuple(float(v) for v in frac),
        count=tuple(int(c) for c in count),
    )


def expected_calibration_error(
    labels: npt.ArrayLike, probs: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """ECE with ``bins`` equal-width bins (10 by default, as the evaluation scenarios use)."""
    return calibration_curve(labels, probs, bins).ece()


def brier_score(labels: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    y, p = _labels_and_probs(labels, probs)
    _check_probs(p)
    return float(np.mean((p - y) ** 2))


def log_loss(labels: npt.ArrayLike, probs: npt.ArrayLike, eps: float = 1e-7) -> float:
    y, p = _labels_and_probs(labels, probs)
    _check_probs(p)
    q = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log1p(-q)))


def plot_calibration(
    curves: Mapping[str, CalibrationCurve], path: Path, *, title: str = "Calibration"
) -> Path:
    """Write a reliability diagram (one line per named curve, plus the diagonal) as a PNG."""
    if not curves:
        raise InvalidInput("nothing to plot: give at least one calibration curve")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", linewidth=1, label="perfect")
    for name, curve in curves.items():
        points = [
            (p, f)
            for p, f, n in zip(
                curve.mean_predicted, curve.fraction_positive, curve.count, strict=True
            )
            if n
        ]
        xs = [p for p, _ in points]
        ys = [f for _, f in points]
        ax.plot(xs, ys, marker="o", linewidth=1.5, label=f"{name} (ECE {curve.ece():.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("predicted P(default)")
    ax.set_ylabel("observed default rate")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


__all__ = [
    "ECE_BINS",
    "CalibrationCurve",
    "auc",
    "brier_score",
    "calibration_curve",
    "expected_calibration_error",
    "log_loss",
    "plot_calibration",
]
