"""Post-hoc calibration fixes a miscalibrated model's ECE and keeps its ranking."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest

from accord.errors import InvalidInput
from accord.scoring.calibration import (
    IsotonicCalibration,
    TemperatureScaling,
    calibrator_from_dict,
    fit_calibrator,
    fit_temperature,
    sigmoid,
    trust_score,
)
from accord.scoring.metrics import auc, expected_calibration_error


def _overconfident(n: int, seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """True logits z, labels drawn from σ(z); the model reports 3·z − 1 (sharp and biased)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.2, 1.3, n)
    y = (rng.uniform(size=n) < sigmoid(z)).astype(np.int64)
    return 3.0 * z - 1.0, y


def test_temperature_scaling_recovers_the_distortion_and_reduces_ece() -> None:
    val_logits, val_y = _overconfident(5000, 0)
    test_logits, test_y = _overconfident(5000, 1)
    cal = fit_temperature(val_logits, val_y)
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    assert cal.bias == pytest.approx(1.0 / 3.0, abs=0.1)
    before = expected_calibration_error(test_y, sigmoid(test_logits))
    after = expected_calibration_error(test_y, cal.probabilities(test_logits))
    assert before > 0.1
    assert after < 0.03
    # Monotone: the ranking, hence AUC, is unchanged.
    assert auc(test_y, cal.probabilities(test_logits)) == pytest.approx(auc(test_y, test_logits))


def test_isotonic_also_reduces_ece() -> None:
    val_logits, val_y = _overconfident(5000, 2)
    test_logits, test_y = _overconfident(5000, 3)
    cal = fit_calibrator(val_logits, val_y, "isotonic")
    assert isinstance(cal, IsotonicCalibration)
    after = expected_calibration_error(test_y, cal.probabilities(test_logits))
    assert after < 0.03
    assert auc(test_y, cal.probabilities(test_logits)) > auc(test_y, test_logits) - 0.01


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_calibrators_round_trip_through_json(method: str) -> None:
    logits, y = _overconfident(800, 4)
    cal = fit_calibrator(logits, y, method)  # type: ignore[arg-type]
    again = calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again == cal
    np.testing.assert_array_equal(again.probabilities(logits), cal.probabilities(logits))


def test_trust_is_100_times_one_minus_p_default() -> None:
    np.testing.assert_allclose(trust_score([0.0, 0.25, 1.0]), [100.0, 75.0, 0.0])
    with pytest.raises(InvalidInput):
        trust_score([1.5])


def test_bad_calibration_input_is_refused() -> None:
    with pytest.raises(InvalidInput, match="both classes"):
        fit_temperature([0.1, 0.2], [1, 1])
    with pytest.raises(InvalidInput, match="positive"):
        TemperatureScaling(temperature=0.0)
    with pytest.raises(InvalidInput, match="unknown"):
        calibrator_from_dict({"method": "magic"})
    with pytest.raises(InvalidInput, match="non-decreasing"):
        IsotonicCalibration(x=(0.0, 1.0), y=(0.9, 0.1))
