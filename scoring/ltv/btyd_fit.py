"""BG/NBD and Gamma-Gamma fits whose optimum is accepted by the numbers, not by SciPy's flag.

``lifetimes`` 0.11.3 (archived upstream) minimises its likelihoods with BFGS and refuses any
result whose ``success`` flag is false. On some CPUs' BLAS kernels BFGS stops at the optimum
with "precision loss" (status 2) although the gradient is ~1e-7, and ``lifetimes`` raises. Here
the same likelihoods (``lifetimes``' own ``_negative_log_likelihood``, a per-customer mean) are
minimised from two starts; a start counts when its gradient is below :data:`GRADIENT_TOL`
(projected onto the bounds when there are any), whatever the flag says, the lower objective
of the starts that count wins, and its Hessian must be positive definite (a minimum, not a
plateau the parameters ran off to). The rest of ``lifetimes``' ``fit`` (time scaling, Hessian,
standard errors) runs unchanged, so the parameters mean what they always meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.errors import InvalidInput

__all__ = ["GRADIENT_TOL", "accept_optimum", "bgnbd_fitter", "gamma_gamma_fitter"]

# The objective is a mean negative log-likelihood per customer, so its scale does not grow with
# the data: a gradient this small moves it by far less than any figure we report.
GRADIENT_TOL = 1e-5

# lifetimes' own start (log-parameters 0.1), then every parameter at 1: two different basins'
# worth of starting points for these four- and three-parameter likelihoods.
SECOND_START = 0.0


def projected_gradient(
    x: npt.NDArray[np.float64],
    gradient: npt.NDArray[np.float64],
    bounds: Sequence[tuple[float | None, float | None]] | None,
) -> npt.NDArray[np.float64]:
    """The gradient with the components that push out of an active bound set to zero (at a
    bound the optimum need not be flat in that direction)."""
    g = np.array(gradient, dtype=float)
    if bounds is None:
        return g
    for i, (low, high) in enumerate(bounds):
        if low is not None and x[i] <= low and g[i] > 0:
            g[i] = 0.0
        if high is not None and x[i] >= high and g[i] < 0:
            g[i] = 0.0
    return g


def accept_optimum(
    results: Sequence[Any],
    bounds: Sequence[tuple[float | None, float | None]] | None = None,
    name: str = "the model",
) -> Any:
    """The best of several ``scipy.optimize.OptimizeResult``s whose objective is finite and
    whose (projected) gradient is below :data:`GRADIENT_TOL`; raises when none is."""
    accepted = []
    worst = 0.0
    for result in results:
        x = np.asarray(result.x, dtype=float)
        gradient = projected_gradient(x, np.asarray(result.jac, dtype=float), bounds)
        norm = float(np.max(np.abs(gradient))) if gradient.size else 0.0
        if np.isfinite(result.fun) and np.isfinite(x).all() and norm <= GRADIENT_TOL:
            accepted.append(result)
        else:
            worst = max(worst, norm if np.isfinite(norm) else np.inf)
    if not accepted:
        raise InvalidInput(
            f"{name} did not reach an optimum from {len(results)} starts "
            f"(largest gradient {worst:.2e}, needs <= {GRADIENT_TOL:.0e}); "
            "the data may be too few or degenerate for it"
        )
    return min(accepted, key=lambda r: float(r.fun))


class _ConvergedByGradient:
    """Replaces ``lifetimes.BaseFitter._fit``: same objective and return value, two starts,
    an optimum accepted by :func:`accept_optimum`."""

    _negative_log_likelihood: Any

    def _fit(
        self,
        minimizing_function_args: tuple[Any, ...],
        initial_params: Any,
        params_size: int,
        disp: bool,
        tol: float = 1e-7,
        bounds: Sequence[tuple[float | None, float | None]] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, float, Any]:
        from autograd import hessian, value_and_grad
        from scipy.optimize import minimize

        first = 0.1 * np.ones(params_size) if initial_params is None else initial_params
        starts = [np.asarray(first, dtype=float), np.full(params_size, SECOND_START)]
        objective = value_and_grad(self._negative_log_likelihood)
        results = []
        for x0 in starts:
            with np.errstate(all="ignore"):
                results.append(
                    minimize(
                        objective,
                        jac=True,
                        method=None,
                        tol=tol,
                        x0=x0,
                        args=minimizing_function_args,
                        options={"disp": disp, **kwargs},
                        bounds=bounds,
                    )
                )
        best = accept_optimum(results, bounds, type(self).__name__)
        hessian_ = hessian(self._negative_log_likelihood)(best.x, *minimizing_function_args)
        if not is_positive_definite(hessian_):
            # flat because the parameters ran off to where the likelihood no longer moves
            # (e.g. nobody ever came back): no minimum, and no standard errors either
            raise InvalidInput(
                f"{type(self).__name__} found no minimum: the likelihood is flat there, so "
                "the data cannot pin its parameters down (too few repeat customers?)"
            )
        return best.x, float(best.fun), hessian_


def is_positive_definite(matrix: Any) -> bool:
    m = np.asarray(matrix, dtype=float)
    if not np.isfinite(m).all():
        return False
    try:
        np.linalg.cholesky((m + m.T) / 2)
    except np.linalg.LinAlgError:
        return False
    return True


def bgnbd_fitter(penalizer: float = 0.0) -> Any:
    """An unfitted ``lifetimes.BetaGeoFitter`` whose optimum is judged by its gradient."""
    from lifetimes import BetaGeoFitter

    class BetaGeoByGradient(_ConvergedByGradient, BetaGeoFitter):  # type: ignore[misc]
        pass

    return BetaGeoByGradient(penalizer_coef=penalizer)


def gamma_gamma_fitter(penalizer: float = 0.0) -> Any:
    """An unfitted ``lifetimes.GammaGammaFitter`` whose optimum is judged by its gradient."""
    from lifetimes import GammaGammaFitter

    class GammaGammaByGradient(_ConvergedByGradient, GammaGammaFitter):  # type: ignore[misc]
        pass

    return GammaGammaByGradient(penalizer_coef=penalizer)
