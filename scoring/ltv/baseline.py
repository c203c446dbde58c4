"""The BG/NBD + Gamma-Gamma baseline, fitted on every channel's transactions merged.

This is DESIGN.md's reference: ``lifetimes`` 0.11.3, daily frequency, penalizer 0, holdout
``t = 273`` days, fitted on all customers (it never sees holdout spend, so fitting on the test
cohort too is fair). BG/NBD gives the expected number of repeat purchase days in the holdout;
Gamma-Gamma, fitted on customers with at least one repeat day and a positive mean repeat spend,
gives the expected spend per purchase day; their product is the predicted holdout spend.

The RFM summary is computed here rather than with ``lifetimes.utils`` (same definitions:
``frequency`` = purchase days - 1, ``recency`` = last - first purchase day, ``T`` = end - first
purchase day, ``monetary_value`` = mean spend of the repeat days, 0 without any), so it does not
depend on that helper's pandas idioms.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from accord.data.cdnow import CALIBRATION_END, HOLDOUT_DAYS
from accord.errors import InvalidInput
from accord.scoring.ltv.btyd_fit import bgnbd_fitter, gamma_gamma_fitter

__all__ = [
    "BtydBaseline",
    "BtydModel",
    "fit_btyd",
    "fit_btyd_baseline",
    "quiet_lifetimes",
    "rfm_summary",
]


def rfm_summary(transactions: pd.DataFrame, end: dt.date = CALIBRATION_END) -> pd.DataFrame:
    """Daily RFM summary (``frequency, recency, T, monetary_value``) indexed by customer_id."""
    end_ts = pd.Timestamp(end)
    own = transactions[transactions["date"] <= end_ts]
    if own.empty:
        raise InvalidInput(f"no transactions on or before {end}")
    days = own.groupby(["customer_id", "date"], sort=True)["dollar_value"].sum().reset_index()
    days["day"] = (days["date"] - end_ts).dt.days.astype(float)
    by = days.groupby("customer_id", sort=True)
    first, last, count = by["day"].min(), by["day"].max(), by.size()
    total, first_spend = by["dollar_value"].sum(), by["dollar_value"].first()
    repeats = count - 1
    monetary = ((total - first_spend) / repeats.where(repeats > 0)).fillna(0.0)
    summary = pd.DataFrame(
        {
            "frequency": repeats.astype(float),
            "recency": last - first,
            "T": -first,
            "monetary_value": monetary,
        }
    )
    summary.index = summary.index.astype(np.int64)
    return summary


@dataclass(frozen=True)
class BtydModel:
    """Fitted BG/NBD and Gamma-Gamma parameters: enough to predict for any RFM summary later
    (a node keeps these, not its customers' summaries)."""

    bgnbd_params: dict[str, float]  # r, alpha, a, b
    gamma_gamma_params: dict[str, float]  # p, q, v

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {"bgnbd": dict(self.bgnbd_params), "gammaGamma": dict(self.gamma_gamma_params)}

    @classmethod
    def from_dict(cls, raw: dict[str, dict[str, float]]) -> BtydModel:
        try:
            bgnbd = {k: float(raw["bgnbd"][k]) for k in ("r", "alpha", "a", "b")}
            gg = {k: float(raw["gammaGamma"][k]) for k in ("p", "q", "v")}
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInput(f"not a BG/NBD + Gamma-Gamma parameter set: {err}") from err
        return cls(bgnbd, gg)

    def fitters(self) -> tuple[Any, Any]:
        """``lifetimes``' BG/NBD and Gamma-Gamma fitters carrying these parameters (call them
        inside :func:`quiet_lifetimes`)."""
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        bgf = BetaGeoFitter()
        bgf.params_ = pd.Series(self.bgnbd_params)
        ggf = GammaGammaFitter()
        ggf.params_ = pd.Series(self.gamma_gamma_params)
        return bgf, ggf

    def predict(
        self, summary: pd.DataFrame, horizon_days: int = HOLDOUT_DAYS
    ) -> tuple[pd.Series, pd.Series]:
        """(expected purchase days in the next ``horizon_days``, expected spend per purchase
        day) for every row of an RFM ``summary``."""
        with quiet_lifetimes():
            bgf, ggf = self.fitters()
            purchases = bgf.conditional_expected_number_of_purchases_up_to_time(
                horizon_days, summary["frequency"], summary["recency"], summary["T"]
            )
            day_spend = ggf.conditional_expected_average_profit(
                summary["frequency"], summary["monetary_value"]
            )
        index = summary.index
        expected_purchases = pd.Series(np.asarray(purchases, dtype=float), index=index)
        expected_day_spend = pd.Series(np.asarray(day_spend, dtype=float), index=index)
        if not (np.isfinite(expected_purchases).all() and np.isfinite(expected_day_spend).all()):
            raise InvalidInput("the BG/NBD + Gamma-Gamma fit did not give finite predictions")
        return expected_purchases, expected_day_spend

    def predicted_spend(self, summary: pd.DataFrame, horizon_days: int = HOLDOUT_DAYS) -> pd.Series:
        purchases, day_spend = self.predict(summary, horizon_days)
        return (purchases * day_spend).rename("predicted")


@contextlib.contextmanager
def quiet_lifetimes() -> Iterator[None]:
    with warnings.catch_warnings():
        # lifetimes 0.11.3 predates numpy 2 and pandas 3 and warns about their deprecations.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        yield


def fit_btyd(summary: pd.DataFrame, penalizer: float = 0.0) -> BtydModel:
    """Fit BG/NBD on every row of an RFM ``summary`` and Gamma-Gamma on its repeat buyers."""
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(repeaters) < 10:
        raise InvalidInput("Gamma-Gamma needs at least 10 customers with repeat purchases")
    with quiet_lifetimes():
        bgf = bgnbd_fitter(penalizer)
        bgf.fit(summary["frequency"], summary["recency"], summary["T"])
        ggf = gamma_gamma_fitter(penalizer)
        ggf.fit(repeaters["frequency"], repeaters["monetary_value"])
    return BtydModel(
        {k: float(v) for k, v in bgf.params_.items()},
        {k: float(v) for k, v in ggf.params_.items()},
    )


@dataclass(frozen=True)
class BtydBaseline:
    """A fitted BG/NBD + Gamma-Gamma pair and its predictions for every customer."""

    bgnbd_params: dict[str, float]  # r, alpha, a, b
    gamma_gamma_params: dict[str, float]  # p, q, v
    predicted: pd.Series  # predicted holdout spend, indexed by customer_id
    expected_purchases: pd.Series
    expected_day_spend: pd.Series


def fit_btyd_baseline(
    transactions: pd.DataFrame,
    end: dt.date = CALIBRATION_END,
    horizon_days: int = HOLDOUT_DAYS,
    penalizer: float = 0.0,
) -> BtydBaseline:
    """Fit BG/NBD + Gamma-Gamma on ``transactions`` up to ``end`` (channels merged) and predict
    the spend of the next ``horizon_days`` days for every customer."""
    summary = rfm_summary(transactions, end)
    model = fit_btyd(summary, penalizer)
    expected_purchases, expected_day_spend = model.predict(summary, horizon_days)
    return BtydBaseline(
        bgnbd_params=model.bgnbd_params,
        gamma_gamma_params=model.gamma_gamma_params,
        predicted=(expected_purchases * expected_day_spend).rename("predicted"),
        expected_purchases=expected_purchases,
        expected_day_spend=expected_day_spend,
    )
