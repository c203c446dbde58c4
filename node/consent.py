"""Consent at the node: records, commitments on the ledger, revocation, export and erasure.

The node captures consent for its own customers (ISO/IEC TS 27560 fields, purposes from the
DPV-mapped vocabulary), keeps the record and a per-customer salt locally, and writes only
salted commitments to the coordinator's ledger. Revocation takes effect locally first (the
gate refuses at once) and is then appended; erasure destroys the salt and the local data.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, text
from sqlmodel import Session, col, select

from accord.clock import Clock, system_clock
from accord.consent.events import ConsentGranted, ConsentRevoked, canonical, encode
from accord.consent.vocabulary import check_terms
from accord.crypto.commitment import SALT_BYTES, consent_commitment, subject_commitment
from accord.errors import AccordError, InvalidInput, NotFound
from accord.ledger_writer import EventLedger
from accord.node import store
from accord.node.models import ConsentEventRow, ConsentRecordRow, DataUseRow, SubjectSalt
from accord.node.outbox import (
    GRANTED,
    NETWORK_STOP,
    REVOKED,
    Outbox,
    OutboxEntry,
    Owed,
    network_stop,
)

MAX_TERM_DAYS = 3 * 365
BULK = 2000

_SALTS = text("SELECT local_ref, salt FROM subject_salt WHERE local_ref IN :refs").bindparams(
    bindparam("refs", expanding=True)
)
_INSERT_SALT = text(
    "INSERT INTO subject_salt (local_ref, salt, created_at) VALUES (:local_ref, :salt, :created_at)"
)
_INSERT_PENDING = text(
    "INSERT INTO consent_record (record_id, local_ref, terms, purposes, given_at, expires_at, "
    "status, subject_commitment, consent_commitment) VALUES (:record_id, :local_ref, :terms, "
    ":purposes, :given_at, :expires_at, 'pending', :subject_commitment, :consent_commitment)"
)
# A grant reaches the ledger after the record exists (and maybe after its revocation).
_MARK_GRANTED = text(
    "UPDATE consent_record SET grant_index = :index, status = CASE WHEN status = 'pending' "
    "THEN 'granted' ELSE status END WHERE record_id = :record_id"
)
_MARK_REVOKED = text("UPDATE consent_record SET revoke_index = :index WHERE record_id = :record_id")
_INSERT_EVENT = text(
    "INSERT INTO consent_event (record_id, status, at, ledger_index) "
    "VALUES (:record_id, :status, :at, :index)"
)
_EVENT_INDEX = text(
    "UPDATE consent_event SET ledger_index = :index "
    "WHERE record_id = :record_id AND status = :status AND ledger_index IS NULL"
)
# Whether a record's grant is on the ledger or on its way there (then so must its revocation).
_GRANT_OWED = text(
    "SELECT record_id FROM ledger_outbox WHERE kind = 'consent.granted' AND state != 'failed' "
    "AND record_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_INDEXES = text(
    "SELECT record_id, grant_index, revoke_index FROM consent_record WHERE record_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_FORGET_RECORDS = text(
    "UPDATE ledger_outbox SET record_id = NULL WHERE record_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_OWED_IDS = text(
    "SELECT id FROM ledger_outbox WHERE kind = :kind AND record_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
# How long a request waits for a delivery pass already running before it answers "pending".
DELIVER_WAIT_S = 5.0
JURISDICTION_LEN = (2, 8)


@dataclass(frozen=True)
class ConsentTerms:
    """What the customer agreed to. Validated on construction; every error names its field."""

    controller: str
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    recipients: tuple[str, ...]
    processing: tuple[str, ...]
    legal_basis: str
    jurisdiction: str
    notice_version: str
    collection_method: str
    given_at: int
    expires_at: int

    def validate(self, now: int) -> ConsentTerms:
        if not self.controller or len(self.controller) > 64:
            raise InvalidInput("controller: name the organisation responsible (1-64 characters)")
        if not self.purposes:
            raise InvalidInput("purposes: list at least one purpose")
        check_terms("purposes", self.purposes, "purposes")
        if not self.data_categories:
            raise InvalidInput("data_categories: list at least one category")
        check_terms("data_categories", self.data_categories, "data_categories")
        if not self.recipients or any(not r or len(r) > 64 for r in self.recipients):
            raise InvalidInput("recipients: list who receives the data (1-64 characters each)")
        if not self.processing:
            raise InvalidInput("processing: list at least one processing operation")
        check_terms("processing", self.processing, "processing")
        check_terms("legal_bases", (self.legal_basis,), "legal_basis")
        if not JURISDICTION_LEN[0] <= len(self.jurisdiction) <= JURISDICTION_LEN[1]:
            raise InvalidInput("jurisdiction: give a region code such as TW or EU")
        if not self.notice_version or len(self.notice_version) > 32:
            raise InvalidInput("notice_version: name the privacy notice shown (1-32 characters)")
        check_terms("collection_methods", (self.collection_method,), "collection_method")
        if self.given_at > now + 300:
            raise InvalidInput("given_at lies in the future")
        if self.expires_at <= now:
            raise InvalidInput("expires_at lies in the past: a consent must still be valid")
        if self.expires_at - self.given_at > MAX_TERM_DAYS * 86400:
            raise InvalidInput(f"expires_at: a consent lasts at most {MAX_TERM_DAYS} days")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "controller": self.controller,
            "purposes": list(self.purposes),
            "dataCategories": list(self.data_categories),
            "recipients": list(self.recipients),
            "processing": list(self.processing),
            "legalBasis": self.legal_basis,
            "jurisdiction": self.jurisdiction,
            "noticeVersion": self.notice_version,
            "collectionMethod": self.collection_method,
            "givenAt": self.given_at,
            "expiresAt": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConsentTerms:
        return cls(
            data["controller"],
            tuple(data["purposes"]),
            tuple(data["dataCategories"]),
            tuple(data["recipients"]),
            tuple(data["processing"]),
            data["legalBasis"],
            data["jurisdiction"],
            data["noticeVersion"],
            data["collectionMethod"],
            int(data["givenAt"]),
            int(data["expiresAt"]),
        )


@dataclass(frozen=True)
class ConsentGrant:
    """A request to record consent for one local customer."""

    local_ref: str
    terms: ConsentTerms


@dataclass(frozen=True)
class ConsentReceipt:
    record_id: str
    local_ref: str
    status: str
    ledger_index: int | None
    consent_commitment: bytes
    # On its way to the ledger (the coordinator was unreachable); the node's outbox delivers it.
    ledger_pending: bool = False


@dataclass
class RecordView:
    record_id: str
    local_ref: str
    terms: ConsentTerms
    status: str
    grant_index: int | None
    revoke_index: int | None
    revoke_reason: str | None
    consent_commitment: bytes
    subject_commitment: bytes
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        from accord.consent.events import b64

        return {
            "recordId": self.record_id,
            "status": self.status,
            "terms": self.terms.to_json(),
            "grantIndex": self.grant_index,
            "revokeIndex": self.revoke_index,
            "revokeReason": self.revoke_reason,
            "consentCommitment": b64(self.consent_commitment),
            "subjectCommitment": b64(self.subject_commitment),
            "history": self.history,
        }


def terms_digest(terms: ConsentTerms) -> bytes:
    return sha256(canonical(terms.to_json())).digest()


def default_terms(
    purposes: Sequence[str], *, controller: str, now: int, days: int = 365
) -> ConsentTerms:
    """The channel's standard network consent, for imports and the demo."""
    return ConsentTerms(
        controller=controller,
        purposes=tuple(purposes),
        data_categories=("payment-history", "purchase-history", "demographics", "credit"),
        recipients=("accord-network",),
        processing=("analyse", "use", "align"),
        legal_basis="consent",
        jurisdiction="TW",
        notice_version="2026-09",
        collection_method="imported",
        given_at=now,
        expires_at=now + days * 86400,
    )


class ConsentBook:
    """The node's consent records and their life on the ledger (through the node's outbox)."""

    def __init__(
        self,
        engine: Engine,
        channel: str,
        ledger: EventLedger,
        clock: Clock = system_clock,
        *,
        outbox: Outbox | None = None,
        row_keys: Callable[[Sequence[str]], list[bytes]] = lambda refs: [],
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.ledger = ledger
        self._clock = clock
        self.outbox = outbox or Outbox(engine, ledger, clock=clock)
        self.outbox.on_sent(self._on_sent)
        # This node's row keys of revoking customers: the network stop the outbox delivers.
        self._row_keys = row_keys

    def _now(self) -> int:
        return int(self._clock())

    def _salts(self, refs: Sequence[str]) -> dict[str, bytes]:
        """Each customer's salt, creating the missing ones (bulk: imports grant thousands)."""
        wanted = sorted(set(refs))
        salts: dict[str, bytes] = {}
        with self.engine.begin() as conn:
            for start in range(0, len(wanted), BULK):
                chunk = wanted[start : start + BULK]
                salts.update((str(r), bytes(v)) for r, v in conn.execute(_SALTS, {"refs": chunk}))
            fresh = [
                {"local_ref": r, "salt": secrets.token_bytes(SALT_BYTES), "created_at": self._now()}
                for r in wanted
                if r not in salts
            ]
            if fresh:
                conn.execute(_INSERT_SALT, fresh)
                salts.update((str(f["local_ref"]), bytes(f["salt"])) for f in fresh)  # type: ignore[call-overload]
        return salts

    def grant(self, grants: Sequence[ConsentGrant]) -> list[ConsentReceipt]:
        """Record consents, put their commitments on the ledger, return receipts."""
        now = self._now()
        for g in grants:
            g.terms.validate(now)
        known = store.existing_refs(self.engine, {g.local_ref for g in grants})
        for g in grants:
            if g.local_ref not in known:
                raise NotFound(f"local_ref {g.local_ref!r} is not a customer of {self.channel!r}")
        salts = self._salts([g.local_ref for g in grants])
        rows: list[dict[str, Any]] = []
        owed: list[Owed] = []
        for g in grants:
            salt = salts[g.local_ref]
            record_id = str(uuid.uuid4())
            consent = consent_commitment(salt, record_id, terms_digest(g.terms))
            subject = subject_commitment(salt, self.channel, g.local_ref)
            rows.append(
                {
                    "record_id": record_id,
                    "local_ref": g.local_ref,
                    "terms": canonical(g.terms.to_json()).decode(),
                    "purposes": json.dumps(list(g.terms.purposes)),
                    "given_at": g.terms.given_at,
                    "expires_at": g.terms.expires_at,
                    "subject_commitment": subject,
                    "consent_commitment": consent,
                }
            )
            event = ConsentGranted(
                self.channel, subject, consent, g.terms.purposes, g.terms.expires_at, now
            )
            owed.append(Owed(GRANTED, encode(event), record_id, consent))
        # Pending with its ledger event owed, in one transaction: the gate uses only records
        # whose grant has a ledger index, which the outbox sets once the ledger acknowledged.
        with self.engine.begin() as conn:
            conn.execute(_INSERT_PENDING, rows)
            conn.execute(
                _INSERT_EVENT,
                [
                    {"record_id": r["record_id"], "status": "granted", "at": now, "index": None}
                    for r in rows
                ],
            )
            self.outbox.add(conn, owed)
        record_ids = [r["record_id"] for r in rows]
        self._deliver(GRANTED, record_ids)
        indexes = self._indexes(record_ids)
        return [
            ConsentReceipt(
                r["record_id"],
                r["local_ref"],
                "pending" if indexes[r["record_id"]][0] is None else "granted",
                indexes[r["record_id"]][0],
                r["consent_commitment"],
                ledger_pending=indexes[r["record_id"]][0] is None,
            )
            for r in rows
        ]

    def revoke(self, record_ids: Sequence[str], reason: str = "withdrawn") -> list[ConsentReceipt]:
        """Stop new uses now; the revocation and the network stop are owed in the same commit."""
        now = self._now()
        rows: list[ConsentRecordRow] = []
        with Session(self.engine, expire_on_commit=False) as session:
            for record_id in record_ids:
                row = session.get(ConsentRecordRow, record_id)
                if row is None:
                    raise NotFound(f"no consent record {record_id!r} at {self.channel!r}")
                if row.status == "revoked":
                    continue
                row.status, row.revoked_at, row.revoke_reason = "revoked", now, reason
                session.add(row)
                rows.append(row)
            on_ledger: set[str] = set()
            if rows:
                keys = self._row_keys(sorted({r.local_ref for r in rows}))
                conn = session.connection()
                owed_grants = set()
                for chunk in _chunks([r.record_id for r in rows]):
                    owed_grants |= {str(x) for (x,) in conn.execute(_GRANT_OWED, {"ids": chunk})}
                on_ledger = {
                    r.record_id
                    for r in rows
                    if r.grant_index is not None or r.record_id in owed_grants
                }
                # The network stop first: it is what stops the other nodes within a second.
                owed = [network_stop(keys)] if keys else []
                owed += [
                    Owed(
                        REVOKED,
                        encode(
                            ConsentRevoked(
                                self.channel,
                                r.subject_commitment,
                                r.consent_commitment,
                                now,
                                reason,
                            )
                        ),
                        r.record_id,
                        r.consent_commitment,
                    )
                    for r in rows
                    if r.record_id in on_ledger
                ]
                session.flush()
                self.outbox.add(conn, owed)
                for r in rows:
                    session.add(
                        ConsentEventRow(
                            record_id=r.record_id, status="revoked", at=now, ledger_index=None
                        )
                    )
            session.commit()
            receipts_rows = [(r.record_id, r.local_ref, r.consent_commitment) for r in rows]
        if not rows:
            return []
        self._deliver(REVOKED, [r[0] for r in receipts_rows])
        indexes = self._indexes([r[0] for r in receipts_rows])
        return [
            ConsentReceipt(
                record_id,
                local_ref,
                "revoked",
                indexes[record_id][1],
                commitment,
                ledger_pending=record_id in on_ledger and indexes[record_id][1] is None,
            )
            for record_id, local_ref, commitment in receipts_rows
        ]

    def _deliver(self, kind: str, record_ids: list[str]) -> None:
        """Try to deliver now; raise the ledger's refusal of one of these records' events."""
        done = self.outbox.deliver(wait_s=DELIVER_WAIT_S)
        if done is None or not done.refused:
            return
        with self.engine.connect() as conn:
            for chunk in _chunks(record_ids):
                for (outbox_id,) in conn.execute(_OWED_IDS, {"kind": kind, "ids": chunk}):
                    refused: AccordError | None = done.refused.get(int(outbox_id))
                    if refused is not None:
                        raise refused

    def _indexes(self, record_ids: list[str]) -> dict[str, tuple[int | None, int | None]]:
        out: dict[str, tuple[int | None, int | None]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(record_ids):
                for record_id, grant_index, revoke_index in conn.execute(_INDEXES, {"ids": chunk}):
                    out[str(record_id)] = (grant_index, revoke_index)
        return out

    def _on_sent(self, conn: Connection, sent: Sequence[tuple[OutboxEntry, int | None]]) -> None:
        """The outbox delivered these: record their ledger indexes with the records; a network
        stop keeps no row key of a customer erased while it was owed."""
        store.forget_row_keys(conn, [(e.id, e.payload) for e, _ in sent if e.kind == NETWORK_STOP])
        for kind, mark in ((GRANTED, _MARK_GRANTED), (REVOKED, _MARK_REVOKED)):
            params = [
                {"record_id": e.record_id, "index": i, "status": kind.split(".")[1]}
                for e, i in sent
                if e.kind == kind and e.record_id is not None
            ]
            if params:
                conn.execute(mark, params)
                conn.execute(_EVENT_INDEX, params)

    def records(self, local_ref: str) -> list[RecordView]:
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(ConsentRecordRow)
                .where(ConsentRecordRow.local_ref == local_ref)
                .order_by(col(ConsentRecordRow.given_at))
            ).all()
            views = []
            for r in rows:
                history = session.exec(
                    select(ConsentEventRow)
                    .where(ConsentEventRow.record_id == r.record_id)
                    .order_by(col(ConsentEventRow.id))
                ).all()
                views.append(
                    RecordView(
                        r.record_id,
                        r.local_ref,
                        ConsentTerms.from_json(json.loads(r.terms)),
                        r.status,
                        r.grant_index,
                        r.revoke_index,
                        r.revoke_reason,
                        r.consent_commitment,
                        r.subject_commitment,
                        [
                            {"status": h.status, "at": h.at, "ledgerIndex": h.ledger_index}
                            for h in history
                        ],
                    )
                )
        return views

    def active_record_ids(self, local_ref: str) -> list[str]:
        return [v.record_id for v in self.records(local_ref) if v.status != "revoked"]

    def salt(self, local_ref: str) -> bytes | None:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(SubjectSalt, local_ref)
            return row.salt if row else None

    def uses(self, local_ref: str) -> list[DataUseRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(
                session.exec(
                    select(DataUseRow)
                    .where(DataUseRow.local_ref == local_ref)
                    .order_by(col(DataUseRow.id))
                ).all()
            )

    def erase(self, local_ref: str) -> dict[str, int]:
        """Crypto-shredding: revoke (reason 'erased'), then destroy the salt and local data."""
        if not store.existing_refs(self.engine, {local_ref}) and self.salt(local_ref) is None:
            raise NotFound(f"{self.channel!r} holds nothing for local_ref {local_ref!r}")
        revoked = self.revoke(self.active_record_ids(local_ref), reason="erased")
        with Session(self.engine, expire_on_commit=False) as session:
            record_ids = [
                r.record_id
                for r in session.exec(
                    select(ConsentRecordRow).where(ConsentRecordRow.local_ref == local_ref)
                ).all()
            ]
            counts = {
                "consents_revoked": len(revoked),
                "consent_records": len(record_ids),
                "data_uses": len(
                    session.exec(select(DataUseRow).where(DataUseRow.local_ref == local_ref)).all()
                ),
            }
            session.exec(
                delete(ConsentEventRow).where(col(ConsentEventRow.record_id).in_(record_ids))
            )
            session.exec(
                delete(ConsentRecordRow).where(col(ConsentRecordRow.local_ref) == local_ref)
            )
            session.exec(delete(DataUseRow).where(col(DataUseRow.local_ref) == local_ref))
            session.exec(delete(SubjectSalt).where(col(SubjectSalt.local_ref) == local_ref))
            if record_ids:  # what is still owed stays owed, no longer tied to a record
                session.connection().execute(_FORGET_RECORDS, {"ids": record_ids})
            session.commit()
        store.delete_customer(self.engine, local_ref)
        return counts


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + BULK] for i in range(0, len(items), BULK)]


def parse_expiry(text: str) -> int:
    """An ISO date or datetime (UTC if no zone) as epoch seconds."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"expires: {text!r} is not an ISO date such as 2027-06-30") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())
