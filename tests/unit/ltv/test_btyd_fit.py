"""BTYD fits accepted by their gradient from two starts: the same optimum whatever SciPy's
flag says on this CPU's kernels, and a clear refusal when there is none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import OptimizeResult

from accord.data import cdnow
from accord.errors import InvalidInput
from accord.scoring.ltv.baseline import quiet_lifetimes, rfm_summary
from accord.scoring.ltv.btyd_fit import (
    GRADIENT_TOL,
    accept_optimum,
    bgnbd_fitter,
    gamma_gamma_fitter,
)


def result(
    fun: float, jac: list[float], success: bool, x: list[float] | None = None
) -> OptimizeResult:
    return OptimizeResult(
        fun=fun, jac=np.array(jac), x=np.array(x or [0.0] * len(jac)), success=success
    )


def test_a_flat_gradient_is_an_optimum_whatever_the_flag() -> None:
    # SciPy's "precision loss" (success False) at a gradient of 1e-7: the case lifetimes refused
    lossy = result(4.2821, [8.8e-8, -1.1e-7, 8.8e-8], success=False)
    assert accept_optimum([lossy]) is lossy
    # and a "success" whose gradient is not flat is no optimum
    with pytest.raises(InvalidInput, match="did not reach an optimum from 1 starts"):
        accept_optimum([result(1.0, [1e-2, 0.0], success=True)])


def test_the_lower_of_two_accepted_starts_wins_and_diverged_starts_do_not_count() -> None:
    low = result(1.0, [1e-9], success=False)
    high = result(1.5, [1e-9], success=True)
    diverged = result(float("nan"), [0.0], success=False)
    assert accept_optimum([high, diverged, low]) is low
    with pytest.raises(InvalidInput, match="largest gradient"):
        accept_optimum([diverged, result(2.0, [10 * GRADIENT_TOL], success=True)])


def test_at_an_active_bound_only_the_inward_gradient_counts() -> None:
    at_bound = result(1.0, [1e-9, 5.0], success=False, x=[0.3, 0.0])
    assert accept_optimum([at_bound], bounds=[(None, None), (0.0, None)]) is at_bound
    with pytest.raises(InvalidInput):
        accept_optimum([result(1.0, [0.0, -5.0], False, [0.3, 0.0])], [(None, None), (0.0, None)])


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return rfm_summary(cdnow.synthesize(800, seed=21))


def test_bgnbd_fit_is_a_stationary_point_of_the_likelihood(summary: pd.DataFrame) -> None:
    with quiet_lifetimes():
        bgf = bgnbd_fitter().fit(summary["frequency"], summary["recency"], summary["T"])
        from autograd import grad

        log_params = np.log(bgf.params_.to_numpy() * np.array([1, bgf._scale, 1, 1]))
        args = (
            summary["frequency"].to_numpy(),
            summary["recency"].to_numpy() * bgf._scale,
            summary["T"].to_numpy() * bgf._scale,
            np.ones(len(summary)),
            0.0,
        )
        gradient = grad(bgf._negative_log_likelihood)(log_params, *args)
        # a gradient bound from the problem: the mean log-likelihood moves by < 1e-9 per step
        # the size of the parameters' own standard errors
        assert np.max(np.abs(gradient)) <= GRADIENT_TOL
        # a perturbation in any direction raises the objective: a minimum, not a saddle
        base = bgf._negative_log_likelihood(log_params, *args)
        for i in range(4):
            for step in (-1e-3, 1e-3):
                moved = log_params.copy()
                moved[i] += step
                assert bgf._negative_log_likelihood(moved, *args) > base


def test_gamma_gamma_fit_agrees_from_both_starts(summary: pd.DataFrame) -> None:
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    with quiet_lifetimes():
        default = gamma_gamma_fitter().fit(repeaters["frequency"], repeaters["monetary_value"])
        other = gamma_gamma_fitter().fit(
            repeaters["frequency"], repeaters["monetary_value"], initial_params=[1.0, 1.0, 1.0]
        )
    # the likelihood is flat along p*v/q's ridge, so compare what the model predicts
    with quiet_lifetimes():
        a = default.conditional_expected_average_profit(
            repeaters["frequency"], repeaters["monetary_value"]
        )
        b = other.conditional_expected_average_profit(
            repeaters["frequency"], repeaters["monetary_value"]
        )
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3)


def test_a_degenerate_log_is_refused_with_a_reason() -> None:
    # nobody ever came back: BG/NBD's dropout parameters run off to infinity
    flat = pd.DataFrame({"frequency": [0.0] * 50, "recency": [0.0] * 50, "T": [100.0] * 50})
    with (
        quiet_lifetimes(),
        pytest.raises(InvalidInput, match=r"no minimum|did not reach an optimum"),
    ):
        bgnbd_fitter().fit(flat["frequency"], flat["recency"], flat["T"])
