"""The LTV scenario (CDNOW omnichannel), split by party exactly as DESIGN.md fixes it.

CDNOW's transaction log (69,659 purchases by the 23,570 customers who first bought in Q1 1997,
up to 1998-06-30) is read as one brand selling through three channels, ``app``, ``web`` and
``store``. Each transaction goes to one channel by a seeded per-customer channel preference
(:func:`assign_channels`):

1. customers are taken in ascending ``customer_id``; with ``numpy.random.default_rng(seed)``
   (``seed`` = :data:`CHANNEL_SEED` = 0) each draws channel shares from
   ``Dirichlet(CHANNEL_CONCENTRATION)`` (one ``rng.dirichlet`` call for all customers, rows in
   that order), so most customers lean on one channel and some spread over several;
2. transactions are sorted by ``(customer_id, date, number_of_cds, dollar_value)`` (so the
   result does not depend on the file's order), then one
   ``rng.random(n_transactions)`` draw, continuing the same generator, picks each transaction's
   channel by inverse CDF of its customer's shares, in the order ``app, web, store``.

Every transaction lands in exactly one channel, so a channel sees only its share of a
customer's purchases. Each channel node computes its own features (:data:`FEATURES`, see
:func:`channel_features`) from its own transactions up to :data:`CALIBRATION_END`
(1997-09-30); a channel holds a customer only if the customer bought there in that period. The
brand's ``label`` node holds every customer's holdout spend, 1997-10-01..1998-06-30 (0 when the
customer bought nothing), in the column :data:`LABEL`. Test customers: ``customer_id % 5 == 0``.
Identifiers (phone, email, references) derive from the customer ID with the helpers of
:mod:`accord.data.uci`, and each channel writes them in its own house style.

The same :func:`split_by_channel` serves the real file (:func:`load_cdnow`) and the seeded
synthetic generator (:func:`synthesize`), so demo, tests and benchmarks share one code path. To
use the real data, point :func:`load_cdnow` at ``CDNOW_master.txt`` (shipped in the ``lifetimes``
package's datasets, or from Fader & Hardie's CDNOW sample pages).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from accord.data.channel_file import ChannelTable
from accord.data.purchase_features import FEATURE_TYPES, FEATURES, purchase_features
from accord.data.purchase_file import PurchaseLog
from accord.data.uci import ScenarioSplit, email_for, is_test_row, local_ref, phone_for
from accord.errors import InvalidInput

__all__ = [
    "CALIBRATION_END",
    "CHANNELS",
    "CHANNEL_CONCENTRATION",
    "CHANNEL_SEED",
    "FEATURES",
    "FEATURE_TYPES",
    "FIRST_PURCHASE_END",
    "HOLDOUT_DAYS",
    "HOLDOUT_END",
    "LABEL",
    "LABEL_CHANNEL",
    "TRANSACTION_COLUMNS",
    "LtvScenario",
    "assign_channels",
    "build_scenario",
    "channel_features",
    "check_transactions",
    "holdout_spend",
    "in_test_cohort",
    "is_test_row",
    "load_cdnow",
    "split_by_channel",
    "synthesize",
]

CHANNELS = ("app", "web", "store")
LABEL_CHANNEL = "label"
LABEL = "holdout_spend"

START = dt.date(1997, 1, 1)
FIRST_PURCHASE_END = dt.date(1997, 3, 31)  # CDNOW's cohort first bought in Q1 1997
CALIBRATION_END = dt.date(1997, 9, 30)
HOLDOUT_END = dt.date(1998, 6, 30)
HOLDOUT_DAYS = (HOLDOUT_END - CALIBRATION_END).days  # 273 = 39 weeks

CHANNEL_SEED = 0
# Dirichlet concentration per channel (app, web, store): mean shares 40 / 35 / 25 %, total 1.5,
# so a typical customer buys mostly through one channel.
CHANNEL_CONCENTRATION = (0.6, 0.525, 0.375)

TRANSACTION_COLUMNS = ["customer_id", "date", "number_of_cds", "dollar_value"]


@dataclass(frozen=True)
class LtvScenario:
    """The scenario before it is written out: what each party holds, keyed by customer ID.

    ``features[channel]`` is indexed by the customer IDs that channel serves (columns
    :data:`FEATURES`); ``label`` is every customer's holdout spend. Only the tables of
    :meth:`split` leave this module for a node; the IDs here are for evaluation and tests.
    """

    transactions: pd.DataFrame  # TRANSACTION_COLUMNS + "channel", every period
    features: dict[str, pd.DataFrame]
    label: pd.Series

    @property
    def customer_ids(self) -> np.ndarray:
        return self.label.index.to_numpy(dtype=np.int64)

    def purchase_logs(self) -> dict[str, PurchaseLog]:
        """Each channel's own purchases of the calibration period, as its node imports them
        (the node derives :data:`FEATURES` from them itself, inside its consent gate)."""
        calibration = self.transactions[self.transactions["date"] <= pd.Timestamp(CALIBRATION_END)]
        logs = {}
        for channel in CHANNELS:
            own = calibration[calibration["channel"] == channel]
            ids = np.unique(own["customer_id"].to_numpy(dtype=np.int64))
            refs, phones, emails = _identity(channel, ids)
            ref_of = dict(zip(ids.tolist(), refs, strict=True))
            frame = pd.DataFrame(
                {
                    "local_ref": [ref_of[int(i)] for i in own["customer_id"]],
                    "date": own["date"].to_numpy(),
                    "number_of_cds": own["number_of_cds"].to_numpy(dtype=np.int64),
                    "dollar_value": own["dollar_value"].to_numpy(dtype=float),
                }
            )
            customers = dict(zip(refs, zip(phones, emails, strict=True), strict=True))
            logs[channel] = PurchaseLog(channel, customers, frame)
        return logs

    def split(self) -> ScenarioSplit:
        tables = {LABEL_CHANNEL: _label_table(self.label)}
        for channel in CHANNELS:
            tables[channel] = _feature_table(channel, self.features[channel])
        return ScenarioSplit(tables)


def load_cdnow(path: Path) -> pd.DataFrame:
    """Read ``CDNOW_master.txt``: whitespace separated, ``customer_id date number_of_cds
    dollar_value`` with the date as YYYYMMDD (a header line is optional)."""
    try:
        raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, comment=None)
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} does not exist") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"{path} is not a readable CDNOW file: {exc}") from exc
    if raw.shape[1] != len(TRANSACTION_COLUMNS):
        raise InvalidInput(
            f"{path}: expected {len(TRANSACTION_COLUMNS)} columns "
            f"({' '.join(TRANSACTION_COLUMNS)}), found {raw.shape[1]}"
        )
    raw.columns = pd.Index(TRANSACTION_COLUMNS)
    if raw.iloc[0, 0] == "customer_id":
        raw = raw.iloc[1:]
    try:
        frame = pd.DataFrame(
            {
                "customer_id": raw["customer_id"].astype(np.int64).to_numpy(),
                "date": pd.to_datetime(raw["date"], format="%Y%m%d").to_numpy(),
                "number_of_cds": raw["number_of_cds"].astype(np.int64).to_numpy(),
                "dollar_value": raw["dollar_value"].astype(float).to_numpy(),
            }
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: a value is not of the expected type: {exc}") from exc
    check_transactions(frame, str(path))
    return frame


def check_transactions(frame: pd.DataFrame, where: str = "transactions") -> None:
    """Refuse a transaction frame that does not have the CDNOW shape."""
    missing = [c for c in TRANSACTION_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{where} lacks columns {', '.join(missing)}")
    if frame.empty:
        raise InvalidInput(f"{where} holds no transactions")
    if not pd.api.types.is_datetime64_any_dtype(frame["date"]):
        raise InvalidInput(f"{where}: 'date' must be a datetime column")
    if (frame["customer_id"] <= 0).any():
        raise InvalidInput(f"{where}: customer IDs must be positive")
    if (frame["dollar_value"] < 0).any() or not np.isfinite(frame["dollar_value"]).all():
        raise InvalidInput(f"{where}: dollar values must be finite and not negative")
    if frame["date"].min() < pd.Timestamp(START) or frame["date"].max() > pd.Timestamp(HOLDOUT_END):
        raise InvalidInput(f"{where}: dates must lie between {START} and {HOLDOUT_END}")


def assign_channels(
    transactions: pd.DataFrame,
    seed: int = CHANNEL_SEED,
    concentration: tuple[float, ...] = CHANNEL_CONCENTRATION,
) -> pd.DataFrame:
    """Return the transactions sorted by all four columns, with a ``channel`` column.

    The procedure is the module's docstring's: one Dirichlet draw of channel shares per
    customer (ascending ID), then one uniform draw per transaction, from one generator.
    """
    if len(concentration) != len(CHANNELS) or min(concentration) <= 0:
        raise InvalidInput(f"concentration needs {len(CHANNELS)} positive values")
    ordered = (
        transactions[TRANSACTION_COLUMNS]
        .sort_values(TRANSACTION_COLUMNS, kind="stable")
        .reset_index(drop=True)
    )
    customers, position = np.unique(ordered["customer_id"].to_numpy(), return_inverse=True)
    rng = np.random.default_rng(seed)
    shares = rng.dirichlet(np.asarray(concentration, dtype=float), size=len(customers))
    cumulative = np.cumsum(shares, axis=1)
    u = rng.random(len(ordered))
    index = (u[:, None] >= cumulative[position]).sum(axis=1)
    index = np.minimum(index, len(CHANNELS) - 1)  # u is below 1, the cumsum may round below it
    ordered["channel"] = np.asarray(CHANNELS, dtype=object)[index]
    return ordered


def channel_features(transactions: pd.DataFrame, end: dt.date = CALIBRATION_END) -> pd.DataFrame:
    """One channel's features from its own transactions up to ``end`` (inclusive), indexed by
    ``customer_id``: what that channel's node computes (:func:`purchase_features`)."""
    return purchase_features(transactions, end, key="customer_id")


def holdout_spend(
    transactions: pd.DataFrame,
    customer_ids: np.ndarray,
    start: dt.date = CALIBRATION_END,
    end: dt.date = HOLDOUT_END,
) -> pd.Series:
    """Each customer's spend after ``start`` up to ``end`` (inclusive); 0 when none."""
    after = transactions[
        (transactions["date"] > pd.Timestamp(start)) & (transactions["date"] <= pd.Timestamp(end))
    ]
    spend = after.groupby("customer_id")["dollar_value"].sum()
    index = pd.Index(np.asarray(customer_ids, dtype=np.int64), name="customer_id")
    return spend.reindex(index, fill_value=0.0).astype(float).rename(LABEL)


def build_scenario(transactions: pd.DataFrame, seed: int = CHANNEL_SEED) -> LtvScenario:
    """Assign channels, compute each channel's features and the brand's labels."""
    check_transactions(transactions)
    assigned = assign_channels(transactions, seed=seed)
    customers = np.unique(assigned["customer_id"].to_numpy(dtype=np.int64))
    features = {
        channel: channel_features(assigned[assigned["channel"] == channel]) for channel in CHANNELS
    }
    return LtvScenario(assigned, features, holdout_spend(assigned, customers))


def split_by_channel(transactions: pd.DataFrame, seed: int = CHANNEL_SEED) -> ScenarioSplit:
    """Split a CDNOW-shaped log into the label table and one feature table per channel."""
    return build_scenario(transactions, seed=seed).split()


def _house_style(channel: str, customer_id: int) -> tuple[str, str]:
    """The phone and email as ``channel`` stores them: same person, different spelling."""
    phone, email = phone_for(customer_id), email_for(customer_id)
    if channel == "web":
        national = "0" + phone[4:]  # 09xxxxxxxx
        return f"{national[:4]}-{national[4:7]}-{national[7:]}", email.upper()
    if channel == "store":
        return f"+886 {phone[4:7]} {phone[7:10]} {phone[10:]}", f"  {email.capitalize()} "
    return phone, email


def _identity(channel: str, ids: np.ndarray) -> tuple[list[str], list[str], list[str]]:
    styled = [_house_style(channel, int(i)) for i in ids]
    refs = [local_ref(channel, int(i)) for i in ids]
    return refs, [p for p, _ in styled], [e for _, e in styled]


def _feature_table(channel: str, features: pd.DataFrame) -> ChannelTable:
    refs, phones, emails = _identity(channel, features.index.to_numpy(dtype=np.int64))
    return ChannelTable(
        channel=channel,
        refs=refs,
        phones=phones,
        emails=emails,
        columns=dict(FEATURE_TYPES),
        values=features[FEATURES].to_numpy(dtype=float).reshape(len(features), len(FEATURES)),
    )


def _label_table(label: pd.Series) -> ChannelTable:
    refs, phones, emails = _identity(LABEL_CHANNEL, label.index.to_numpy(dtype=np.int64))
    return ChannelTable(
        channel=LABEL_CHANNEL,
        refs=refs,
        phones=phones,
        emails=emails,
        columns={LABEL: "float"},
        values=label.to_numpy(dtype=float).reshape(-1, 1),
    )


# BG/NBD and Gamma-Gamma parameters close to what CDNOW's calibration period gives, so the
# synthetic cohort behaves like the real one (about half the customers never come back).
_SYN_R, _SYN_ALPHA, _SYN_A, _SYN_B = 0.25, 33.5, 0.72, 2.16
_SYN_P, _SYN_Q, _SYN_V = 6.3, 3.6, 15.0
_SYN_PRICE_PER_CD = 13.0


def synthesize(n: int, seed: int = 7) -> pd.DataFrame:
    """A seeded synthetic transaction log with CDNOW's columns, cohort and horizon.

    Customers ``1..n`` first buy on a uniform day of Q1 1997, then follow a BG/NBD process
    (purchase rate ~ Gamma(r, alpha) per day, after each repeat purchase the customer drops out
    with probability ~ Beta(a, b)) until 1998-06-30; spend per purchase is Gamma-Gamma (mean
    ~ inverse-gamma), CDs follow the spend.
    """
    if n <= 0:
        raise InvalidInput("the number of customers must be positive")
    rng = np.random.default_rng(seed)
    horizon = (HOLDOUT_END - START).days
    first = rng.integers(0, (FIRST_PURCHASE_END - START).days + 1, size=n).astype(float)
    rate = rng.gamma(_SYN_R, 1.0 / _SYN_ALPHA, size=n)
    drop = rng.beta(_SYN_A, _SYN_B, size=n)
    scale = 1.0 / rng.gamma(_SYN_Q, 1.0 / _SYN_V, size=n)  # E[spend | nu] = p / nu
    customers = [np.arange(n)]
    times = [first]
    now = first.copy()
    alive = rng.random(n) >= drop  # BG/NBD: a customer may drop out after any purchase
    while alive.any():
        idx = np.flatnonzero(alive)
        now[idx] += rng.exponential(1.0, size=len(idx)) / np.maximum(rate[idx], 1e-12)
        inside = now[idx] <= horizon
        idx = idx[inside]
        customers.append(idx)
        times.append(now[idx].copy())
        alive[:] = False
        alive[idx] = rng.random(len(idx)) >= drop[idx]
    who = np.concatenate(customers)
    day = np.floor(np.concatenate(times)).astype(np.int64)
    value = np.round(np.maximum(rng.gamma(_SYN_P, scale[who]), 0.5), 2)
    cds = np.maximum(1, np.round(value / _SYN_PRICE_PER_CD + rng.normal(0, 0.5, len(who))))
    frame = pd.DataFrame(
        {
            "customer_id": who + 1,
            "date": pd.Timestamp(START) + pd.to_timedelta(day, unit="D"),
            "number_of_cds": cds.astype(np.int64),
            "dollar_value": value,
        }
    )
    return frame.sort_values(TRANSACTION_COLUMNS, kind="stable").reset_index(drop=True)


def in_test_cohort(customer_ids: np.ndarray) -> np.ndarray:
    """DESIGN.md's fixed test cohort: ``customer_id % 5 == 0``."""
    return np.asarray(np.asarray(customer_ids, dtype=np.int64) % 5 == 0, dtype=bool)
