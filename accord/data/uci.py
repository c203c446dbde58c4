"""The trust scenario (UCI credit default), split by channel exactly as DESIGN.md fixes it.

Channels and their columns: ``pay`` = PAY_0, PAY_2..PAY_6; ``shop`` = BILL_AMT1..6,
PAY_AMT1..6; ``social`` = LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE. The brand's ``label`` node
holds ``default.payment.next.month``. Identifiers (phone, email) derive from the customer ID,
and each channel writes them in its own house style, as real systems do. Coverage ``full`` gives
every channel every customer; ``realistic`` keeps each customer at pay 95 %, shop 90 %,
social 85 % (``numpy.random.default_rng(0)``, drawn in that order as ``rng.random(n) < p``) and
adds 5 % customers per channel that the brand does not know.

The same :func:`split_by_channel` serves the real CSV (:func:`load_uci_csv`) and the seeded
synthetic generator (:func:`synthesize`), so demo, tests and benchmarks share one code path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from accord.data.channel_file import ChannelTable
from accord.data.consents import synthetic_decisions, write_decisions
from accord.errors import InvalidInput
from accord.schema import ColumnType

Coverage = Literal["full", "realistic"]

PAY = ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]
BILL = [f"BILL_AMT{i}" for i in range(1, 7)]
PAY_AMT = [f"PAY_AMT{i}" for i in range(1, 7)]
SOCIAL = ["LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE"]
LABEL = "default.payment.next.month"

CHANNEL_COLUMNS: dict[str, list[str]] = {"pay": PAY, "shop": BILL + PAY_AMT, "social": SOCIAL}
LABEL_CHANNEL = "label"
CHANNELS = ("pay", "shop", "social")

COLUMN_TYPES: dict[str, ColumnType] = {
    **{c: "int" for c in PAY},
    **{c: "float" for c in BILL + PAY_AMT},
    "LIMIT_BAL": "float",
    "SEX": "categorical",
    "EDUCATION": "categorical",
    "MARRIAGE": "categorical",
    "AGE": "int",
    LABEL: "bool",
}

REALISTIC_KEEP = {"pay": 0.95, "shop": 0.90, "social": 0.85}
EXTRA_SHARE = 0.05
COVERAGE_SEED = 0
UNKNOWN_ID_BASE = 10_000_000  # IDs of people the brand does not know start here

REQUIRED_COLUMNS = ["ID", *PAY, *BILL, *PAY_AMT, *SOCIAL, LABEL]


def is_test_row(customer_id: int) -> bool:
    """DESIGN.md's fixed test split: ``ID % 5 == 0``."""
    return customer_id % 5 == 0


def phone_for(customer_id: int) -> str:
    """A Taiwanese mobile number in E.164, unique per ID (7919 is invertible mod 10^8)."""
    return f"+8869{(customer_id * 7919) % 100_000_000:08d}"


def email_for(customer_id: int) -> str:
    digest = hashlib.sha256(f"accord-demo-email:{customer_id}".encode()).hexdigest()[:6]
    return f"customer{customer_id}.{digest}@example.com"


def _house_style(channel: str, customer_id: int) -> tuple[str, str]:
    """The phone and email as ``channel`` stores them: same person, different spelling."""
    phone, email = phone_for(customer_id), email_for(customer_id)
    national = "0" + phone[4:]  # 09xxxxxxxx
    if channel == "shop":
        return f"{national[:4]}-{national[4:7]}-{national[7:]}", email.upper()
    if channel == "social":
        return f"+886 {phone[4:7]} {phone[7:10]} {phone[10:]}", f"  {email.capitalize()} "
    return phone, email


def local_ref(channel: str, customer_id: int) -> str:
    """The channel's own customer reference: opaque, and different at every channel."""
    if channel == LABEL_CHANNEL:
        return f"CRM-{customer_id:08d}"
    digest = hashlib.sha256(f"{channel}:{customer_id}".encode()).hexdigest()[:12]
    return f"{channel}-{digest}"


@dataclass(frozen=True)
class ScenarioSplit:
    """One table per party, ready to import into that party's node."""

    tables: dict[str, ChannelTable]

    def write(self, directory: Path, *, consents_seed: int | None = None) -> list[Path]:
        """Write each party's file; with ``consents_seed``, also synthetic consent decisions."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = [table.write(directory) for table in self.tables.values()]
        if consents_seed is not None:
            today = dt.date.today()
            for offset, (name, table) in enumerate(self.tables.items()):
                decisions = synthetic_decisions(table.refs, consents_seed + offset, today)
                write_decisions(directory / f"{name}.consents.csv", decisions)
        return paths


def _coverage_masks(n: int, coverage: Coverage) -> dict[str, np.ndarray]:
    if coverage == "full":
        return {c: np.ones(n, dtype=bool) for c in CHANNELS}
    rng = np.random.default_rng(COVERAGE_SEED)
    return {c: rng.random(n) < REALISTIC_KEEP[c] for c in CHANNELS}


def _channel_table(channel: str, frame: pd.DataFrame, ids: np.ndarray) -> ChannelTable:
    columns = CHANNEL_COLUMNS[channel] if channel != LABEL_CHANNEL else [LABEL]
    styled = [_house_style(channel, int(i)) for i in ids]
    return ChannelTable(
        channel=channel,
        refs=[local_ref(channel, int(i)) for i in ids],
        phones=[p for p, _ in styled],
        emails=[e for _, e in styled],
        columns={c: COLUMN_TYPES[c] for c in columns},
        values=frame[columns].to_numpy(dtype=float),
    )


def split_by_channel(frame: pd.DataFrame, coverage: Coverage) -> ScenarioSplit:
    """Split a UCI-shaped frame into the label table and one table per channel."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the credit data lacks columns {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    ids = frame["ID"].to_numpy(dtype=np.int64)
    n = len(frame)
    masks = _coverage_masks(n, coverage)
    tables = {LABEL_CHANNEL: _channel_table(LABEL_CHANNEL, frame, ids)}
    extra_rng = np.random.default_rng(COVERAGE_SEED + 1)
    for offset, channel in enumerate(CHANNELS):
        kept = frame[masks[channel]]
        kept_ids = ids[masks[channel]]
        if coverage == "realistic":
            # People this channel serves whom the brand has never met: their columns are
            # drawn from real rows so the channel's data keeps its shape.
            extra = round(EXTRA_SHARE * n)
            donors = extra_rng.integers(0, n, size=extra)
            extra_ids = UNKNOWN_ID_BASE + offset * n + np.arange(extra)
            kept = pd.concat([kept, frame.iloc[donors]], ignore_index=True)
            kept_ids = np.concatenate([kept_ids, extra_ids])
        tables[channel] = _channel_table(channel, kept, kept_ids)
    return ScenarioSplit(tables)


def load_uci_csv(path: Path) -> pd.DataFrame:
    """Read ``UCI_Credit_Card.csv`` (the Kaggle/UCI export with an ID column)."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} does not exist") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"{path} is not a readable CSV file: {exc}") from exc
    if "PAY_1" in frame.columns and "PAY_0" not in frame.columns:
        frame = frame.rename(columns={"PAY_1": "PAY_0"})
    return frame


def synthesize(n: int, seed: int = 7) -> pd.DataFrame:
    """A seeded synthetic frame with the UCI columns and a learnable default signal.

    One latent risk drives every channel, strongest in repayment status (pay), weaker in
    balances and payments (shop) and weakest in demographics (social), like the real data.
    """
    if n <= 0:
        raise InvalidInput("the number of customers must be positive")
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    limit = np.round(np.exp(rng.normal(11.5 - 0.35 * risk, 0.6)), -4).clip(10_000, 1_000_000)
    frame = pd.DataFrame({"ID": np.arange(1, n + 1)})
    frame["LIMIT_BAL"] = limit
    frame["SEX"] = rng.integers(1, 3, size=n)
    frame["EDUCATION"] = np.clip(np.round(1.8 + 0.3 * risk + rng.normal(0, 0.8, n)), 1, 4)
    frame["MARRIAGE"] = rng.integers(1, 4, size=n)
    frame["AGE"] = np.clip(np.round(rng.normal(35 - 1.5 * risk, 9)), 21, 79)
    for k, col in enumerate(PAY):
        drift = 1.1 * risk - 0.15 * k + rng.normal(0, 0.9, n)
        frame[col] = np.clip(np.round(drift - 0.4), -2, 8)
    usage = 1 / (1 + np.exp(-(0.6 * risk + rng.normal(0, 0.8, n))))
    for k, col in enumerate(BILL):
        frame[col] = np.round(limit * usage * rng.uniform(0.85, 1.15, n) * (1 - 0.03 * k))
    for k, col in enumerate(PAY_AMT):
        share = 1 / (1 + np.exp(0.9 * risk + 1.5 + rng.normal(0, 0.7, n)))
        frame[col] = np.round(frame[BILL[k]].to_numpy() * share)
    logit = -1.45 + 1.15 * risk + 0.35 * (frame["PAY_0"].to_numpy() > 1)
    frame[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame[REQUIRED_COLUMNS]
