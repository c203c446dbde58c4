"""Post-hoc calibration of the trust head, and the trust score itself.

The split model is trained for ranking (log loss with party dropout); its probabilities are then
calibrated on a validation slice of the *training* rows that the model did not train on:

* :class:`TemperatureScaling` — ``P = σ(logit / T + b)``: one temperature (and, by default, one
  bias, i.e. Platt scaling on the logit). Two numbers, monotone, so AUC is unchanged.
* :class:`IsotonicCalibration` — a monotone step function of ``σ(logit)`` (scikit-learn's
  isotonic regression), stored as its breakpoints. Ties can merge scores, so AUC may move
  slightly.

Both are plain, JSON-able data (``to_dict``/:func:`calibrator_from_dict`), so the coordinator can
version them with the model. ``trust = 100 × (1 − P(default))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from accord.errors import InvalidInput
from accord.scoring.ziln import ZilnParams

FloatArray = npt.NDArray[np.float64]
Method = Literal["temperature", "isotonic"]


def sigmoid(logits: npt.ArrayLike) -> FloatArray:
    z = np.asarray(logits, dtype=np.float64)
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for any |z|
    return out


def trust_score(p_default: npt.ArrayLike) -> FloatArray:
    """``100 × (1 − P(default))``, in [0, 100]."""
    p = np.asarray(p_default, dtype=np.float64)
    if p.size and (not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0):
        raise InvalidInput("P(default) must lie in [0, 1]")
    out: FloatArray = 100.0 * (1.0 - p)
    return out


def _pairs(logits: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if z.shape != y.shape or z.size == 0:
        raise InvalidInput("calibration needs one label per logit, and at least one row")
    if not np.isfinite(z).all():
        raise InvalidInput("logits must be finite")
    if not np.isin(y, (0.0, 1.0)).all() or y.min() == y.max():
        raise InvalidInput("calibration labels must be 0/1 and include both classes")
    return z, y


@dataclass(frozen=True)
class TemperatureScaling:
    """``P(default) = σ(logit / temperature + bias)``."""

    temperature: float = 1.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise InvalidInput("temperature must be a positive finite number")
        if not math.isfinite(self.bias):
            raise InvalidInput("bias must be finite")

    def probabilities(self, logits: npt.ArrayLike) -> FloatArray:
        z = np.asarray(logits, dtype=np.float64)
        return sigmoid(z / self.temperature + self.bias)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "temperature", "temperature": self.temperature, "bias": self.bias}


def fit_temperature(
    logits: npt.ArrayLike, labels: npt.ArrayLike, *, fit_bias: bool = True
) -> TemperatureScaling:
    """Minimise the log loss of ``σ(z / T + b)`` over ``T > 0`` (and ``b`` if ``fit_bias``)."""
    z, y = _pairs(logits, labels)

    def nll_and_grad(theta: FloatArray) -> tuple[float, FloatArray]:
        inv_t = math.exp(theta[0])  # optimise log(1/T): T stays positive
        b = theta[1] if fit_bias else 0.0
        s = z * inv_t + b
        # log(1 + e^s) − y·s, and its gradient (σ(s) − y) · ds/dθ
        loss = float(np.mean(np.logaddexp(0.0, s) - y * s))
        r = sigmoid(s) - y
        grad = np.array([float(np.mean(r * z)) * inv_t, float(np.mean(r)) if fit_bias else 0.0])
        return loss, grad

    result = minimize(nll_and_grad, np.zeros(2), jac=True, method="L-BFGS-B")
    inv_t = math.exp(float(result.x[0]))
    return TemperatureScaling(temperature=1.0 / inv_t, bias=float(result.x[1]) if fit_bias else 0.0)


@dataclass(frozen=True)
class IsotonicCalibration:
    """A monotone map from ``σ(logit)`` to P(default), as breakpoints (linear in between)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or len(self.x) < 2:
            raise InvalidInput("isotonic calibration needs at least two matching breakpoints")
        if any(b < a for a, b in zip(self.x, self.x[1:], strict=False)) or any(
            b < a for a, b in zip(self.y, self.y[1:], strict=False)
        ):
            raise InvalidInput("isotonic breakpoints must be non-decreasing")
        if min(self.y) < 0.0 or max(self.y) > 1.0:
            raise InvalidInput("isotonic outputs must lie in [0, 1]")

    def probabilities(self, logits: npt.ArrayLike) -> FloatArray:
        p = sigmoid(logits)
        out: FloatArray = np.interp(p, np.asarray(self.x), np.asarray(self.y))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}


def fit_isotonic(logits: npt.ArrayLike, labels: npt.ArrayLike) -> IsotonicCalibration:
    z, y = _pairs(logits, labels)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(sigmoid(z), y)
    xs = np.asarray(iso.X_thresholds_, dtype=np.float64)
    ys = np.asarray(iso.y_thresholds_, dtype=np.float64)
    if xs.size < 2:  # a single step: widen it so it is a valid map
        xs = np.array([0.0, 1.0])
        ys = np.array([float(ys[0]), float(ys[0])])
    return IsotonicCalibration(x=tuple(float(v) for v in xs), y=tuple(float(v) for v in ys))


Calibrator = TemperatureScaling | IsotonicCalibration


@dataclass(frozen=True)
class SpendScale:
    """The LTV head's calibration: one factor on spend, fitted so predicted and actual spend
    agree in total on held-out validation customers. Applied as a shift of the ZILN's log-spend
    mean, so the interval moves with the expectation."""

    factor: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise InvalidInput("a spend scale must be a positive finite number")

    def apply(self, params: ZilnParams) -> ZilnParams:
        return ZilnParams(params.p, params.mu + math.log(self.factor), params.sigma)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "spend-scale", "factor": self.factor}


def fit_spend_scale(expected: npt.ArrayLike, actual: npt.ArrayLike) -> SpendScale:
    """Total actual over total predicted spend (1 when there is nothing to fit on)."""
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if e.size == 0 or float(e.sum()) <= 0 or float(a.sum()) <= 0:
        return SpendScale(1.0)
    return SpendScale(float(a.sum() / e.sum()))


def spend_scale_from_dict(raw: object) -> SpendScale:
    if not isinstance(raw, dict) or raw.get("method") != "spend-scale":
        raise InvalidInput("a spend scale is a JSON object with method 'spend-scale'")
    try:
        return SpendScale(float(raw["factor"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed spend scale: {exc}") from exc


def fit_calibrator(
    logits: npt.ArrayLike, labels: npt.ArrayLike, method: Method = "temperature"
) -> Calibrator:
    if method == "temperature":
        return fit_temperature(logits, labels)
    if method == "isotonic":
        return fit_isotonic(logits, labels)
    raise InvalidInput(f"unknown calibration method {method!r}: use temperature or isotonic")


def calibrator_from_dict(raw: object) -> Calibrator:
    if not isinstance(raw, dict):
        raise InvalidInput("a calibrator must be a JSON object")
    method = raw.get("method")
    try:
        if method == "temperature":
            return TemperatureScaling(float(raw["temperature"]), float(raw["bias"]))
        if method == "isotonic":
            return IsotonicCalibration(
                tuple(float(v) for v in raw["x"]), tuple(float(v) for v in raw["y"])
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed {method} calibrator: {exc}") from exc
    raise InvalidInput(f"unknown calibration method {method!r}")


__all__ = [
    "Calibrator",
    "IsotonicCalibration",
    "Method",
    "SpendScale",
    "TemperatureScaling",
    "calibrator_from_dict",
    "fit_calibrator",
    "fit_isotonic",
    "fit_spend_scale",
    "fit_temperature",
    "sigmoid",
    "spend_scale_from_dict",
    "trust_score",
]
