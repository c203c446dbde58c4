"""What a channel node computes from its own purchase log: recency, frequency, monetary value,
tenure and inter-purchase time, as of a cut-off date.

Pure (pandas in, pandas out). The node runs it inside its consent gate on the purchases of the
customers the gate released (:mod:`accord.node.gate`); the LTV scenario's data tool and the
benchmark run the same function, so a model sees the same features wherever it is trained.
"Days" are distinct purchase days (the unit BG/NBD counts in); times are in days before or
after the cut-off.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from accord.schema import ColumnType

__all__ = ["FEATURES", "FEATURE_TYPES", "PURCHASE_COLUMNS", "RECENT_DAYS", "purchase_features"]

RECENT_DAYS = (30, 90)
PURCHASE_COLUMNS = ("date", "number_of_cds", "dollar_value")

FEATURE_TYPES: dict[str, ColumnType] = {
    "transactions": "int",  # rows in the log
    "purchase_days": "int",  # distinct days with a purchase
    "cds": "int",  # items bought
    "spend": "float",  # money spent
    "mean_day_spend": "float",  # spend / purchase_days
    "max_day_spend": "float",
    "first_day_spend": "float",  # spend on the first day the customer bought here
    "last_day_spend": "float",
    "recency_days": "int",  # cut-off - last purchase
    "tenure_days": "int",  # cut-off - first purchase here
    "active_span_days": "int",  # last - first purchase here
    "mean_gap_days": "float",  # span / (purchase_days - 1); tenure when bought on one day
    **{f"purchase_days_{d}d": "int" for d in RECENT_DAYS},
    **{f"spend_{d}d": "float" for d in RECENT_DAYS},
}
FEATURES = list(FEATURE_TYPES)


def purchase_features(purchases: pd.DataFrame, end: dt.date, *, key: str) -> pd.DataFrame:
    """Features of every customer with a purchase up to ``end`` (inclusive).

    ``purchases`` has the column ``key`` (who bought) and :data:`PURCHASE_COLUMNS` (``date`` as
    a datetime). The result is indexed by ``key`` (sorted), columns :data:`FEATURES`, all
    finite floats.
    """
    end_ts = pd.Timestamp(end)
    own = purchases[purchases["date"] <= end_ts]
    if own.empty:
        empty = pd.DataFrame(columns=FEATURES, dtype=float)
        empty.index.name = key
        return empty
    days = (
        own.groupby([key, "date"], sort=True)
        .agg(cds=("number_of_cds", "sum"), spend=("dollar_value", "sum"), rows=("date", "size"))
        .reset_index()
    )
    days["before_end"] = (end_ts - days["date"]).dt.days
    by = days.groupby(key, sort=True)
    out = pd.DataFrame(
        {
            "transactions": by["rows"].sum(),
            "purchase_days": by.size(),
            "cds": by["cds"].sum(),
            "spend": by["spend"].sum(),
            "max_day_spend": by["spend"].max(),
            "first_day_spend": by["spend"].first(),
            "last_day_spend": by["spend"].last(),
            "recency_days": by["before_end"].min(),
            "tenure_days": by["before_end"].max(),
        }
    )
    out["mean_day_spend"] = out["spend"] / out["purchase_days"]
    out["active_span_days"] = out["tenure_days"] - out["recency_days"]
    repeats = out["purchase_days"] - 1
    out["mean_gap_days"] = np.where(
        repeats > 0, out["active_span_days"] / repeats.clip(lower=1), out["tenure_days"]
    )
    for window in RECENT_DAYS:
        recent = days[days["before_end"] < window].groupby(key)
        out[f"purchase_days_{window}d"] = recent.size().reindex(out.index, fill_value=0)
        out[f"spend_{window}d"] = recent["spend"].sum().reindex(out.index, fill_value=0.0)
    out = out[FEATURES].astype(float)
    out.index.name = key
    return out
