"""The node's durable outbox: what it owes the coordinator, delivered in order, never lost.

A revocation, a network stop or a grant is written to ``ledger_outbox`` in the same database
transaction as the local change it reports, so neither an unreachable coordinator nor a crash
of the node can drop it. :meth:`Outbox.deliver` sends pending entries in order (the request
that made them tries at once; :class:`OutboxDrainer` retries with backoff in the background)
and marks each one sent with its ledger index in one transaction with the caller's own
bookkeeping (``on_sent``).

Exactly once on the ledger: an entry's payload is the canonical ledger entry itself, fixed at
the local commit, so its leaf hash is known before it is sent. An entry that was tried before
(``attempts > 0``) may already be on the ledger (the node can die between the append and the
mark); before sending it again the node asks the ledger for the consent's status and accepts
the index it names only if an inclusion proof of *this* leaf hash at that index verifies
against a checkpoint signed by the coordinator's key. A coordinator that claims "already
there" without the entry being there cannot make the node drop it. What remains is at least
once, never lost: a resend inside the checkpoint interval may append a revocation twice, which
the status map ignores (revoking twice changes nothing) and a re-sent grant is refused as a
conflict and resolved by the next lookup.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from sqlalchemy import Connection, Engine, bindparam, text

from accord.clock import Clock, system_clock
from accord.consent.events import ConsentGranted, ConsentRevoked, ConsentStatus, decode
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import leaf_hash
from accord.crypto.merkle.verify import verify_inclusion
from accord.crypto.note import verify_checkpoint
from accord.errors import AccordError, InvalidInput, NotPermitted
from accord.ledger_writer import CHUNK, EventLedger, LedgerWriter
from accord.proto.v1 import ledger_pb2
from accord.rowkeys import ROW_KEY_BYTES

log = structlog.get_logger(__name__)

GRANTED = ConsentGranted.TYPE
REVOKED = ConsentRevoked.TYPE
NETWORK_STOP = "network.stop"
MAX_ERROR = 512
# Refusals that no retry can change: the entry is marked failed and the queue moves on.
PERMANENT = (InvalidInput, NotPermitted)

_INSERT = text(
    "INSERT INTO ledger_outbox (kind, state, record_id, consent, payload, created_at, attempts) "
    "VALUES (:kind, 'pending', :record_id, :consent, :payload, :created_at, 0)"
)
_PENDING = text(
    "SELECT id, kind, record_id, consent, payload, created_at, attempts, last_error "
    "FROM ledger_outbox WHERE state = 'pending' ORDER BY id"
)
_TRIED = text("UPDATE ledger_outbox SET attempts = attempts + 1 WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_SENT = text(
    "UPDATE ledger_outbox SET state = 'sent', sent_at = :at, ledger_index = :index, "
    "last_error = NULL WHERE id = :id"
)
_SET_STATE = text(
    "UPDATE ledger_outbox SET state = :state, last_error = :error WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_LAST_INDEX = text("SELECT MAX(ledger_index) FROM ledger_outbox WHERE state = 'sent'")
_FAILED_ROWS = text(
    "SELECT id, kind, record_id, consent, payload, created_at, attempts, last_error "
    "FROM ledger_outbox WHERE state = 'failed' ORDER BY id"
)


@dataclass(frozen=True)
class Owed:
    """One thing to deliver, as the caller builds it inside its transaction."""

    kind: str
    payload: bytes
    record_id: str | None = None
    consent: bytes | None = None


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    kind: str
    record_id: str | None
    consent: bytes | None
    payload: bytes
    created_at: int
    attempts: int
    last_error: str | None


@dataclass
class Delivery:
    """What one pass achieved."""

    sent: dict[int, int | None] = field(default_factory=dict)  # id -> ledger index
    refused: dict[int, AccordError] = field(default_factory=dict)
    left: int = 0  # still pending after the pass (the coordinator is unreachable)
    error: str | None = None


class LedgerLookup(Protocol):
    """Asks the ledger whether an entry is already on it; the index, or None."""

    def find(self, kind: str, consent: bytes, payload: bytes) -> int | None: ...


OnSent = Callable[[Connection, Sequence[tuple[OutboxEntry, int | None]]], None]
Block = Callable[[list[bytes]], None]


def network_stop(row_keys: Sequence[bytes]) -> Owed:
    return Owed(NETWORK_STOP, b"".join(row_keys))


def row_keys_of(payload: bytes) -> list[bytes]:
    return [payload[i : i + ROW_KEY_BYTES] for i in range(0, len(payload), ROW_KEY_BYTES)]


class Outbox:
    def __init__(
        self,
        engine: Engine,
        ledger: EventLedger,
        *,
        block: Block | None = None,
        lookup: LedgerLookup | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self._ledger = ledger
        self._block = block
        self._lookup = lookup
        self._clock = clock
        self._on_sent: list[OnSent] = []
        self._lock = threading.Lock()
        # Set when a pass leaves work behind: the drainer takes over at once.
        self.wake = threading.Event()

    def on_sent(self, hook: OnSent) -> None:
        """Run ``hook`` in the transaction that marks entries sent (the caller's bookkeeping)."""
        self._on_sent.append(hook)

    def add(self, conn: Connection, owed: Sequence[Owed]) -> None:
        """Record ``owed`` inside the caller's transaction (commits or rolls back with it)."""
        if not owed:
            return
        now = int(self._clock())
        conn.execute(
            _INSERT,
            [
                {
                    "kind": o.kind,
                    "record_id": o.record_id,
                    "consent": o.consent,
                    "payload": o.payload,
                    "created_at": now,
                }
                for o in owed
            ],
        )

    def pending(self) -> list[OutboxEntry]:
        return pending(self.engine)

    # -- delivering ---------------------------------------------------------------------------
    def deliver(self, wait_s: float | None = None) -> Delivery | None:
        """One pass over the pending entries, in order; stop at the first transient failure.

        ``wait_s``: how long to wait for a pass already running elsewhere (None: as long as
        it takes); returns None if it did not get its turn.
        """
        if not self._lock.acquire(timeout=-1 if wait_s is None else wait_s):
            return None
        try:
            done = Delivery()
            try:
                self._pass(done)
            except AccordError as exc:
                done.error = str(exc)[:MAX_ERROR]
                log.warning("ledger outbox: delivery postponed", reason=done.error)
            done.left = len(self.pending())
            if done.left:
                self.wake.set()
            return done
        finally:
            self._lock.release()

    def _pass(self, done: Delivery) -> None:
        batch: list[OutboxEntry] = []
        for entry in self.pending():
            clean = entry.attempts == 0 or entry.kind == NETWORK_STOP or self._lookup is None
            if entry.kind in (GRANTED, REVOKED) and clean and len(batch) < CHUNK:
                batch.append(entry)
                continue
            self._append(batch, done)
            batch = []
            if entry.kind == NETWORK_STOP:
                self._stop(entry, done)
            elif not clean and self._resolved(entry, done):
                continue
            else:
                batch.append(entry)
        self._append(batch, done)

    def _resolved(self, entry: OutboxEntry, done: Delivery) -> bool:
        """An entry tried before: is it on the ledger already? Mark it sent if so."""
        if self._lookup is None or entry.consent is None:
            return False
        index = self._lookup.find(entry.kind, entry.consent, entry.payload)
        if index is None:
            return False
        self._mark_sent([(entry, index)], done)
        return True

    def _append(self, batch: list[OutboxEntry], done: Delivery) -> None:
        if not batch:
            return
        self._tried(batch)
        try:
            indexes = self._ledger.append([decode(e.payload) for e in batch])
        except PERMANENT as exc:
            if len(batch) > 1:  # one bad entry refuses its whole request: find it alone
                for entry in batch:
                    self._append([entry], done)
                return
            self._refuse(batch[0], exc, done)
            return
        except AccordError as exc:
            self._note_error(batch, exc)
            raise
        self._mark_sent(list(zip(batch, indexes, strict=True)), done)

    def _stop(self, entry: OutboxEntry, done: Delivery) -> None:
        if self._block is None:  # nobody to tell (a node with no network, as in unit tests)
            self._mark_sent([(entry, None)], done)
            return
        self._tried([entry])
        try:
            self._block(row_keys_of(entry.payload))
        except PERMANENT as exc:
            self._refuse(entry, exc, done)
            return
        except AccordError as exc:
            self._note_error([entry], exc)
            raise
        self._mark_sent([(entry, None)], done)

    def _tried(self, entries: Sequence[OutboxEntry]) -> None:
        # Committed before sending: after a crash, attempts > 0 says "maybe on the ledger".
        with self.engine.begin() as conn:
            conn.execute(_TRIED, {"ids": [e.id for e in entries]})

    def _note_error(self, entries: Sequence[OutboxEntry], exc: AccordError) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _SET_STATE,
                {"state": "pending", "error": str(exc)[:MAX_ERROR], "ids": [e.id for e in entries]},
            )

    def _refuse(self, entry: OutboxEntry, exc: AccordError, done: Delivery) -> None:
        log.error("ledger outbox: entry refused", kind=entry.kind, id=entry.id, reason=str(exc))
        with self.engine.begin() as conn:
            conn.execute(
                _SET_STATE, {"state": "failed", "error": str(exc)[:MAX_ERROR], "ids": [entry.id]}
            )
        done.refused[entry.id] = exc

    def _mark_sent(self, sent: list[tuple[OutboxEntry, int | None]], done: Delivery) -> None:
        now = int(self._clock())
        with self.engine.begin() as conn:
            conn.execute(_SENT, [{"id": e.id, "index": i, "at": now} for e, i in sent])
            for hook in self._on_sent:
                hook(conn, sent)
        done.sent.update((e.id, i) for e, i in sent)


def pending(engine: Engine) -> list[OutboxEntry]:
    """Entries still to deliver, in delivery order."""
    with engine.connect() as conn:
        return [_entry(r) for r in conn.execute(_PENDING)]


def failed(engine: Engine) -> list[OutboxEntry]:
    """Entries the coordinator refused for good (shown, never retried)."""
    with engine.connect() as conn:
        return [_entry(r) for r in conn.execute(_FAILED_ROWS)]


def last_index(engine: Engine) -> int | None:
    """The highest ledger index this node's outbox delivered."""
    with engine.connect() as conn:
        value = conn.execute(_LAST_INDEX).scalar()
    return None if value is None else int(value)


def _entry(row: Sequence[object]) -> OutboxEntry:
    id_, kind, record_id, consent, payload, created_at, attempts, last_error = row
    return OutboxEntry(
        int(id_),  # type: ignore[call-overload]
        str(kind),
        None if record_id is None else str(record_id),
        None if consent is None else bytes(consent),  # type: ignore[call-overload]
        bytes(payload),  # type: ignore[call-overload]
        int(created_at),  # type: ignore[call-overload]
        int(attempts),  # type: ignore[call-overload]
        None if last_error is None else str(last_error),
    )


class ProvenLookup:
    """:class:`LedgerLookup` over gRPC that believes only a verified inclusion proof."""

    def __init__(self, ledger: LedgerWriter, coordinator_key: NoteVerifier) -> None:
        self._ledger = ledger
        self._key = coordinator_key

    def find(self, kind: str, consent: bytes, payload: bytes) -> int | None:
        reply = self._ledger.call(
            "GetConsentStatus", ledger_pb2.GetConsentStatusRequest(consent=consent)
        )
        status_json: str = reply.status_json  # type: ignore[attr-defined]
        if not status_json:
            return None
        try:
            checkpoint = verify_checkpoint(
                reply.checkpoint.note,  # type: ignore[attr-defined]
                [self._key],
                origin=self._key.name,
            )
            status = ConsentStatus.from_json(json.loads(status_json))
            index = status.granted_index if kind == GRANTED else status.revoked_index
            if index is None:
                return None
            proof = self._ledger.call(
                "GetInclusionProof",
                ledger_pb2.GetInclusionProofRequest(index=index, tree_size=checkpoint.size),
            )
            verify_inclusion(
                leaf_hash(payload),
                index,
                checkpoint.size,
                [bytes(h) for h in proof.hashes],  # type: ignore[attr-defined]
                checkpoint.root_hash,
            )
        except (InvalidInput, ValueError, RecursionError) as exc:
            # Not provably ours (or a status we cannot read): send it; a duplicate is harmless.
            log.warning("ledger outbox: no proof the entry is on the ledger", reason=str(exc))
            return None
        return index


class OutboxDrainer(threading.Thread):
    """Delivers what the request path could not, retrying with exponential backoff."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        idle_s: float = 60.0,
    ) -> None:
        super().__init__(name="ledger-outbox", daemon=True)
        self._outbox = outbox
        self._first, self._max, self._idle = first_backoff_s, max_backoff_s, idle_s
        self._stopping = threading.Event()

    def run(self) -> None:
        backoff = self._first
        while not self._stopping.is_set():
            self._outbox.wake.clear()
            try:
                done = self._outbox.deliver()
            except Exception:  # a bug must not end delivery for the life of the process
                log.exception("ledger outbox: delivery pass failed")
                done = None
            if done is not None and done.left == 0:
                backoff, delay = self._first, self._idle
            elif done is not None and done.error is None:
                delay = 0.0  # progress, more to do
            else:
                delay, backoff = backoff, min(backoff * 2, self._max)
            if delay and done is not None and done.left == 0:
                self._outbox.wake.wait(delay)  # idle: a new entry wakes the drainer
            elif delay:
                self._stopping.wait(delay)  # failing: wait the backoff out

    def stop(self) -> None:
        self._stopping.set()
        self._outbox.wake.set()
        self.join(timeout=5)
