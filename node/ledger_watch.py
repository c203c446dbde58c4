"""The node watches the coordinator's ledger: every checkpoint it sees must extend the last.

The node keeps the newest checkpoint of the coordinator's log it has verified (``ledger_view``;
a checkpoint this node cosigned as a witness counts too). Every ``interval`` it fetches the
latest signed checkpoint and checks it against that one:

- the same size and root, or a larger tree with a consistency proof that verifies: the view
  moves forward;
- a smaller tree: the ledger was rolled back (a coordinator restored from an older backup, or
  entries dropped) — acknowledged appends may be gone;
- the same size with another root, or a larger tree no proof connects: the log was rewritten
  (a fork).

A rollback or fork is kept as an alarm with both checkpoints as evidence (each signed by the
coordinator, so anyone can check them), logged as an error, shown by ``accord node status``,
and the view does not move onto the other history: the node never silently accepts it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import Engine
from sqlmodel import Session, select

from accord.clock import Clock, system_clock
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import verify_consistency
from accord.crypto.note import Checkpoint, Note, verify_checkpoint
from accord.errors import AccordError, Conflict, InvalidInput, NotReady, Unavailable
from accord.node.models import LedgerAlarm, LedgerView, WitnessCheckpoint
from accord.proto.v1 import ledger_pb2

log = structlog.get_logger(__name__)

WATCH_INTERVAL_S = 2.0
MAX_DETAIL = 512
WATCH = "watch"
WITNESS = "witness"
ROLLBACK = "rollback"
FORK = "fork"


class LedgerAlarmed(Conflict):
    """The node holds evidence that the coordinator's ledger went back or forked."""


class LedgerSource(Protocol):
    """The coordinator's ledger as the watch reads it."""

    def latest(self) -> str: ...

    def consistency(self, size1: int, size2: int) -> list[bytes]: ...


class GrpcLedgerSource:
    """:class:`LedgerSource` over the node's ledger connection (anything with ``call``)."""

    def __init__(self, ledger: _Caller) -> None:
        self._ledger = ledger

    def latest(self) -> str:
        reply = self._ledger.call("GetCheckpoint", ledger_pb2.GetCheckpointRequest())
        return str(reply.note)  # type: ignore[attr-defined]

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        reply = self._ledger.call(
            "GetConsistencyProof", ledger_pb2.GetConsistencyProofRequest(size1=size1, size2=size2)
        )
        return [bytes(h) for h in reply.hashes]  # type: ignore[attr-defined]


class _Caller(Protocol):
    def call(self, method: str, request: object) -> object: ...


@dataclass(frozen=True)
class Held:
    size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True)
class WatchResult:
    state: str  # first | same | extended | rollback | fork
    held_size: int
    served_size: int
    detail: str = ""


def held_checkpoint(session: Session, origin: str) -> Held | None:
    """The newest checkpoint of ``origin`` this node verified, as watcher or as witness."""
    rows: list[Held] = []
    view = session.get(LedgerView, origin)
    if view is not None:
        rows.append(Held(view.size, bytes(view.root_hash), view.note))
    cosigned = session.get(WitnessCheckpoint, origin)
    if cosigned is not None and cosigned.note:
        rows.append(Held(cosigned.size, bytes(cosigned.root_hash), cosigned.note))
    return max(rows, key=lambda h: h.size) if rows else None


def record_alarm(
    session: Session,
    *,
    origin: str,
    source: str,
    kind: str,
    detail: str,
    held: Held,
    served_size: int,
    served_note: str,
    now: int,
) -> bool:
    """Keep the evidence (the first time) or note that it was seen again; True if new."""
    row = session.get(LedgerAlarm, (origin, source))
    if row is not None:
        row.last_seen_at = now
        row.times += 1
        session.add(row)
        return False
    session.add(
        LedgerAlarm(
            origin=origin,
            source=source,
            kind=kind,
            detail=detail[:MAX_DETAIL],
            held_size=held.size,
            held_note=held.note,
            served_size=served_size,
            served_note=served_note,
            detected_at=now,
            last_seen_at=now,
        )
    )
    return True


def alarms(engine: Engine) -> list[LedgerAlarm]:
    with Session(engine) as session:
        found = list(session.exec(select(LedgerAlarm)).all())
    return sorted(found, key=lambda a: (a.detected_at, a.source))


def views(engine: Engine) -> list[LedgerView]:
    with Session(engine) as session:
        return list(session.exec(select(LedgerView)).all())


def clear_alarms(engine: Engine) -> int:
    """Forget every alarm and the checkpoints it guarded (the watch's and the witness's): the
    node then follows, and witnesses, the log as the coordinator serves it now."""
    with Session(engine) as session:
        found = list(session.exec(select(LedgerAlarm)).all())
        origins = {row.origin for row in found}
        for row in found:
            session.delete(row)
        for origin in origins:
            for table in (LedgerView, WitnessCheckpoint):
                held = session.get(table, origin)
                if held is not None:
                    session.delete(held)
        session.commit()
    return len(found)


def _short(root: bytes) -> str:
    return root.hex()[:16]


class LedgerWatch:
    def __init__(
        self,
        engine: Engine,
        source: LedgerSource,
        coordinator: NoteVerifier,
        clock: Clock = system_clock,
    ) -> None:
        self._engine = engine
        self._source = source
        self._key = coordinator
        self._clock = clock
        self._lock = threading.Lock()

    def check(self) -> WatchResult:
        """Fetch the coordinator's latest checkpoint and check it extends the one held."""
        note = self._source.latest()
        try:
            served = verify_checkpoint(note, [self._key], origin=self._key.name)
        except CryptoError as exc:
            raise InvalidInput(f"the coordinator's checkpoint does not verify: {exc}") from exc
        with self._lock, Session(self._engine) as session:
            held = held_checkpoint(session, served.origin)
            now = int(self._clock())
            if held is None:
                self._save(session, served, note, now)
                return WatchResult("first", 0, served.size)
            problem = self._compare(held, served)
            if problem is None:
                state = "same" if served.size == held.size else "extended"
                # the view follows what is served even when the witness already holds it
                view = session.get(LedgerView, served.origin)
                if view is None or served.size > view.size:
                    self._save(session, served, note, now)
                return WatchResult(state, held.size, served.size)
            kind, detail = problem
            new = record_alarm(
                session,
                origin=served.origin,
                source=WATCH,
                kind=kind,
                detail=detail,
                held=held,
                served_size=served.size,
                served_note=Note.parse(note).encode(),
                now=now,
            )
            session.commit()
        if new:
            log.error("ledger " + kind, origin=served.origin, detail=detail, served=note)
        return WatchResult(kind, held.size, served.size, detail)

    def _compare(self, held: Held, served: Checkpoint) -> tuple[str, str] | None:
        if served.size < held.size:
            return ROLLBACK, (
                f"the coordinator serves checkpoint {served.size} of {served.origin}, but this "
                f"node verified checkpoint {held.size} (root {_short(held.root_hash)}): the "
                f"ledger was rolled back and {held.size - served.size} entries are gone"
            )
        if served.size == held.size:
            if served.root_hash == held.root_hash:
                return None
            return FORK, (
                f"two checkpoints of size {held.size} of {served.origin} with different roots "
                f"({_short(held.root_hash)}, {_short(served.root_hash)}): the log was rewritten"
            )
        if held.size == 0:
            return None
        try:
            proof = self._source.consistency(held.size, served.size)
            verify_consistency(held.size, served.size, held.root_hash, served.root_hash, proof)
        except (CryptoError, InvalidInput, NotReady) as exc:
            return FORK, (
                f"checkpoint {served.size} of {served.origin} does not extend checkpoint "
                f"{held.size} (root {_short(held.root_hash)}) this node verified: {exc}"
            )
        return None

    def _save(self, session: Session, served: Checkpoint, note: str, now: int) -> None:
        row = session.get(LedgerView, served.origin)
        if row is None:
            row = LedgerView(origin=served.origin, size=0, root_hash=b"", note="", verified_at=0)
        row.size, row.root_hash, row.note, row.verified_at = (
            served.size,
            served.root_hash,
            note,
            now,
        )
        session.add(row)
        session.commit()


class LedgerWatcher(threading.Thread):
    """Runs :meth:`LedgerWatch.check` every ``interval_s`` until stopped."""

    def __init__(self, watch: LedgerWatch, interval_s: float = WATCH_INTERVAL_S) -> None:
        super().__init__(name="ledger-watch", daemon=True)
        self._watch = watch
        self._interval = interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self._watch.check()
            except Unavailable as exc:
                log.debug("ledger watch: coordinator unreachable", reason=str(exc))
            except AccordError as exc:
                log.warning("ledger watch: check failed", reason=str(exc))
            except Exception:  # a bug must not end the watch for the life of the process
                log.exception("ledger watch: check failed")
            if self._stopping.wait(self._interval):
                return

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)


def start_ledger_watch(
    engine: Engine, ledger: _Caller, coordinator: NoteVerifier, interval_s: float = WATCH_INTERVAL_S
) -> LedgerWatcher:
    watcher = LedgerWatcher(LedgerWatch(engine, GrpcLedgerSource(ledger), coordinator), interval_s)
    watcher.start()
    return watcher
