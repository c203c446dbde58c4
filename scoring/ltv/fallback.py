"""Below k: a lone channel's own BG/NBD + Gamma-Gamma, scaled by one aggregate per channel.

P2 keeps the coordinator from ever seeing one channel's embedding, so the federated model cannot
answer for a customer only one channel holds (on the CDNOW split, 78 % of customers). That
channel can still answer from its own purchases with a model that needs no label and sends no
vector: BG/NBD + Gamma-Gamma fitted on its own log (for a customer only it serves, its log is the
customer's whole history). Fitted on one channel's population the estimate runs low, so the
coordinator scales it with one number per channel: the labels of that channel's below-k training
customers summed, over the channel's estimates for the same customers summed. The channel sends
one sum over at least :data:`MIN_SCALE_CUSTOMERS` customers, never a per-customer value. It
learns little that training does not already show it: rows below k never enter a training
round, so it sees which of its customers never train; being asked for the sum tells it which of
those are below k rather than held out for evaluation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from accord.errors import InvalidInput
from accord.scoring.ltv.baseline import fit_btyd_baseline
from accord.scoring.split_model import TooFewSources

__all__ = [
    "MIN_SCALE_CUSTOMERS",
    "RFM_INPUTS",
    "fallback_scale",
    "own_channel_estimates",
    "rfm_from_features",
]

RFM_INPUTS = ("purchase_days", "active_span_days", "tenure_days", "spend", "first_day_spend")
"""The purchase features (:mod:`accord.data.purchase_features`) an RFM summary derives from."""

MIN_SCALE_CUSTOMERS = 100
"""A channel's sum of estimates covers at least this many customers, so it describes a group."""


def own_channel_estimates(
    transactions: pd.DataFrame, channels: list[str] | tuple[str, ...]
) -> dict[str, pd.Series]:
    """Each channel's BG/NBD + Gamma-Gamma holdout-spend estimate for its own customers, fitted
    on its own transactions only (``transactions`` has a ``channel`` column)."""
    out = {}
    for channel in channels:
        own = transactions[transactions["channel"] == channel]
        if own.empty:
            raise InvalidInput(f"channel {channel!r} has no transactions to fit its own model on")
        out[channel] = fit_btyd_baseline(own).predicted
    return out


def fallback_scale(estimates: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The factor that makes a channel's summed estimates match the summed labels of the same
    (below-k, training) customers."""
    est = np.asarray(estimates, dtype=float)
    y = np.asarray(labels, dtype=float)
    if est.shape != y.shape:
        raise InvalidInput("one estimate per labelled customer is needed")
    if est.size < MIN_SCALE_CUSTOMERS:
        raise TooFewSources(
            f"{est.size} customers cannot give a group sum; at least {MIN_SCALE_CUSTOMERS} needed"
        )
    total = float(est.sum())
    if not np.isfinite(total) or total <= 0:
        raise InvalidInput("the channel's estimates must be finite and sum to more than zero")
    return float(y.sum()) / total


def rfm_from_features(features: pd.DataFrame) -> pd.DataFrame:
    """The daily RFM summary (``frequency, recency, T, monetary_value``) of customers described
    by their purchase features, equal to :func:`~accord.scoring.ltv.baseline.rfm_summary` of the
    log they came from. A node holds these features (derived inside its consent gate), not the
    log, when it fits or applies its own model."""
    missing = [c for c in RFM_INPUTS if c not in features.columns]
    if missing:
        raise InvalidInput(
            f"purchase features {', '.join(missing)} are missing: only a node with a purchase "
            "log can estimate spend on its own"
        )
    x = features[list(RFM_INPUTS)].astype(float)
    if not np.isfinite(x.to_numpy()).all():
        raise InvalidInput("some customers have no purchase before the cut-off")
    repeats = x["purchase_days"] - 1
    monetary = ((x["spend"] - x["first_day_spend"]) / repeats.where(repeats > 0)).fillna(0.0)
    return pd.DataFrame(
        {
            "frequency": repeats,
            "recency": x["active_span_days"],
            "T": x["tenure_days"],
            "monetary_value": monetary,
        },
        index=features.index,
    )
