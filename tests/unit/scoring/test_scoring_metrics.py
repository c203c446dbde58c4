"""AUC, ECE and calibration curves: hand-checked values, sklearn agreement, and the PNG plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from accord.errors import InvalidInput
from accord.scoring.metrics import (
    ECE_BINS,
    auc,
    brier_score,
    calibration_curve,
    expected_calibration_error,
    log_loss,
    plot_calibration,
)


def test_auc_agrees_with_sklearn_and_extremes() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = y + rng.normal(0, 1.0, 500)
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_auc_refuses_one_class_and_mismatched_lengths() -> None:
    with pytest.raises(InvalidInput, match="both classes"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InvalidInput, match="pair up"):
        auc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InvalidInput, match="0 or 1"):
        auc([0, 2], [0.1, 0.2])


def test_ece_by_hand() -> None:
    # Bin [0.2, 0.3): two rows predicted 0.25, one positive → |0.5 − 0.25| = 0.25, weight 2/4.
    # Bin [0.9, 1.0]: two rows predicted 0.95, both positive → |1 − 0.95| = 0.05, weight 2/4.
    y = [0, 1, 1, 1]
    p = [0.25, 0.25, 0.95, 0.95]
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)


def test_ece_is_small_for_calibrated_draws_and_large_for_overconfident() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.005
    sharpened = np.where(p > 0.5, 0.99, 0.01)
    assert expected_calibration_error(y, sharpened) > 0.2


def test_calibration_curve_shape_and_edges() -> None:
    curve = calibration_curve([0, 1, 1], [0.0, 0.55, 1.0])
    assert curve.bins == ECE_BINS
    assert curve.edges[0] == 0.0
    assert curve.edges[-1] == 1.0
    assert sum(curve.count) == 3
    assert curve.count[0] == 1  # 0.0 in the first bin
    assert curve.count[-1] == 1  # 1.0 in the last bin, not beyond it
    assert curve.count[5] == 1
    assert np.isnan(curve.mean_predicted[1])  # empty bins are kept, as NaN


def test_probabilities_outside_unit_interval_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
        expected_calibration_error([0, 1], [0.5, 1.5])
    with pytest.raises(InvalidInput, match="finite"):
        expected_calibration_error([0, 1], [0.5, float("nan")])


def test_brier_and_log_loss() -> None:
    assert brier_score([0, 1], [0.0, 1.0]) == 0.0
    assert brier_score([0, 1], [0.5, 0.5]) == pytest.approx(0.25)
    assert log_loss([0, 1], [0.5, 0.5]) == pytest.approx(np.log(2))


def test_plot_calibration_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 1000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    out = plot_calibration(
        {"model": calibration_curve(y, p), "sharp": calibration_curve(y, p**2)},
        tmp_path / "plots" / "calibration.png",
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidInput):
        plot_calibration({}, tmp_path / "empty.png")
