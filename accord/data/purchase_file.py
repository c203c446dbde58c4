"""The purchase log a channel imports into its own node: ``<channel>.purchases.csv``.

One row per purchase, header ``local_ref,phone,email,date,number_of_cds,dollar_value``: the
customer's reference and identifiers (repeated on each of their rows, and the same on each),
the day (``YYYY-MM-DD``), how many items and what it cost. The node keeps the log and derives
its features from it only inside its consent gate (:mod:`accord.data.purchase_features`).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from accord.data.csv_records import open_csv, records
from accord.errors import InvalidInput

__all__ = ["HEADER", "SUFFIX", "PurchaseLog", "read_purchase_log"]

SUFFIX = ".purchases.csv"
HEADER = ("local_ref", "phone", "email", "date", "number_of_cds", "dollar_value")


@dataclass(frozen=True)
class PurchaseLog:
    """A channel's customers (reference, phone, email) and its purchases, by reference."""

    channel: str
    customers: dict[str, tuple[str, str]]  # local_ref -> (phone, email), in first-seen order
    purchases: pd.DataFrame  # local_ref, date (datetime64), number_of_cds, dollar_value

    def path(self, directory: Path) -> Path:
        return directory / f"{self.channel}{SUFFIX}"

    def write(self, directory: Path) -> Path:
        path = self.path(directory)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for ref, day, cds, value in self.purchases[
                ["local_ref", "date", "number_of_cds", "dollar_value"]
            ].itertuples(index=False):
                phone, email = self.customers[ref]
                writer.writerow(
                    [ref, phone, email, day.strftime("%Y-%m-%d"), int(cds), repr(float(value))]
                )
        return path


def read_purchase_log(path: Path) -> PurchaseLog:
    """Read and validate a purchase log; errors name the file, line and field."""
    if not path.name.endswith(SUFFIX):
        raise InvalidInput(f"{path}: a purchase log is named <channel>{SUFFIX}")
    channel = path.name.removesuffix(SUFFIX)
    customers: dict[str, tuple[str, str]] = {}
    refs: list[str] = []
    days: list[dt.date] = []
    cds: list[int] = []
    values: list[float] = []
    with open_csv(path) as handle:
        reader = records(handle, path)
        if tuple(next(reader, ())) != HEADER:
            raise InvalidInput(f"{path}: header must be {','.join(HEADER)}")
        for line, record in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if len(record) != len(HEADER):
                raise InvalidInput(f"{where}: expected {len(HEADER)} fields, got {len(record)}")
            ref, phone, email, day, count, value = record
            if not ref or len(ref) > 128:
                raise InvalidInput(f"{where}: local_ref must be 1-128 characters")
            known = customers.setdefault(ref, (phone, email))
            if known != (phone, email):
                raise InvalidInput(f"{where}: {ref!r} has other phone/email than on its first row")
            try:
                days.append(dt.date.fromisoformat(day))
            except ValueError as exc:
                raise InvalidInput(f"{where}: date {day!r} is not YYYY-MM-DD") from exc
            try:
                n = int(count)
            except ValueError as exc:
                raise InvalidInput(
                    f"{where}: number_of_cds {count!r} is not a whole number"
                ) from exc
            try:
                amount = float(value)
            except ValueError as exc:
                raise InvalidInput(f"{where}: dollar_value {value!r} is not a number") from exc
            if n < 0:
                raise InvalidInput(f"{where}: number_of_cds must not be negative")
            if not math.isfinite(amount) or amount < 0:
                raise InvalidInput(f"{where}: dollar_value must be a finite amount ≥ 0")
            refs.append(ref)
            cds.append(n)
            values.append(amount)
    if not refs:
        raise InvalidInput(f"{path}: no purchases")
    frame = pd.DataFrame(
        {
            "local_ref": refs,
            "date": pd.to_datetime(pd.Series(days, dtype="object")),
            "number_of_cds": cds,
            "dollar_value": values,
        }
    )
    return PurchaseLog(channel, customers, frame)
