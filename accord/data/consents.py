"""Consent decisions to import at a node: a CSV per channel, and a seeded synthetic generator.

``<channel>.consents.csv``: ``local_ref,purposes,notice_version,collection_method,jurisdiction,
expires``; purposes separated by ``;``; ``expires`` an ISO date. A customer with no row gave no
consent at that channel.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accord.consent.vocabulary import check_terms
from accord.data.csv_records import open_csv, records
from accord.errors import InvalidInput

HEADER = ["local_ref", "purposes", "notice_version", "collection_method", "jurisdiction", "expires"]
NETWORK_PURPOSES = ("model-training", "risk-scoring", "marketing")
# Of a channel's customers: most agree to the network uses, some to the channel's own service
# only, a few never answered.
SHARES = {"network": 0.90, "service-only": 0.06}


@dataclass(frozen=True)
class ConsentDecision:
    local_ref: str
    purposes: tuple[str, ...]
    notice_version: str
    collection_method: str
    jurisdiction: str
    expires: dt.date


def synthetic_decisions(refs: list[str], seed: int, today: dt.date) -> list[ConsentDecision]:
    rng = np.random.default_rng(seed)
    draws = rng.random(len(refs))
    decisions = []
    for ref, u in zip(refs, draws, strict=True):
        if u < SHARES["network"]:
            purposes: tuple[str, ...] = NETWORK_PURPOSES
        elif u < SHARES["network"] + SHARES["service-only"]:
            purposes = ("service-provision",)
        else:
            continue
        decisions.append(
            ConsentDecision(
                ref, purposes, "2026-09", "app-dialog", "TW", today + dt.timedelta(days=365)
            )
        )
    return decisions


def write_decisions(path: Path, decisions: list[ConsentDecision]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for d in decisions:
            writer.writerow(
                [
                    d.local_ref,
                    ";".join(d.purposes),
                    d.notice_version,
                    d.collection_method,
                    d.jurisdiction,
                    d.expires.isoformat(),
                ]
            )


def read_decisions(path: Path) -> list[ConsentDecision]:
    decisions = []
    with open_csv(path) as handle:
        reader = records(handle, path)
        if next(reader, None) != HEADER:
            raise InvalidInput(f"{path}: header must be {','.join(HEADER)}")
        for line, row in enumerate(reader, start=2):
            if len(row) != len(HEADER):
                raise InvalidInput(f"{path}:{line}: expected {len(HEADER)} fields, got {len(row)}")
            ref, purposes, notice, method, jurisdiction, expires = row
            try:
                terms = check_terms("purposes", [p for p in purposes.split(";") if p], "purposes")
                check_terms("collection_methods", [method], "collection_method")
            except InvalidInput as exc:
                raise InvalidInput(f"{path}:{line}: {exc}") from exc
            if not terms:
                raise InvalidInput(f"{path}:{line}: purposes is empty")
            try:
                expiry = dt.date.fromisoformat(expires)
            except ValueError as exc:
                raise InvalidInput(
                    f"{path}:{line}: expires {expires!r} is not an ISO date"
                ) from exc
            decisions.append(ConsentDecision(ref, terms, notice, method, jurisdiction, expiry))
    return decisions
