"""The scoring credentials a node has accepted, kept in its store until none can be used again.

A presentation is accepted once per phase (CHECK, then COMPUTE or the own estimate). The record
of that use lives in the node's database, not in memory, so a restart of the node does not
reopen it: a curious coordinator replaying a presentation to a freshly restarted node (to get a
second embedding under another participant set, say) is refused as it was before.

There is no window past expiry either: :func:`accord.credentials.verify` refuses a credential
once its ``exp`` has passed, and a use is kept until ``exp + CLOCK_SKEW_S``, so pruning removes
only uses whose credential can no longer be accepted, even if this node's clock steps back by
that much.

Cost on the scoring hot path: one ``INSERT .. ON CONFLICT DO NOTHING`` on a primary key per use.
Concurrent uses share one transaction (group commit through :class:`AppendGroup`, as ledger
appends do), so one fsync acknowledges many; pruning is a range delete on an indexed column,
at most once a minute, inside one of those transactions.
"""

from __future__ import annotations

import threading

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from accord.clock import Clock, system_clock
from accord.credentials import CLOCK_SKEW_S, CredentialRejected
from accord.errors import Unavailable
from accord.ledger_writer import AppendGroup

PRUNE_EVERY_S = 60
_INSERT = text(
    "INSERT INTO used_credential (nonce, phase, expires_at) VALUES (:n, :p, :e) "
    "ON CONFLICT DO NOTHING"
)
_USED = text("SELECT 1 FROM used_credential WHERE nonce = :n LIMIT 1")
_PRUNE = text("DELETE FROM used_credential WHERE expires_at < :cutoff")


def _entry(nonce: str, phase: str, expires: int) -> bytes:
    return f"{nonce}\n{phase}\n{expires}".encode()


class UsedCredentials:
    """A node's durable replay cache: ``use`` raises if (nonce, phase) was used before."""

    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self._engine = engine
        self._clock = clock
        # one writer transaction at a time: SQLite serialises them anyway, and callers that
        # arrive meanwhile go together in the next one
        self._group = AppendGroup(self._record, max_in_flight=1)
        self._prune_lock = threading.Lock()
        self._pruned_at = 0

    def use(self, nonce: str, phase: str, expires: int, now: int) -> None:
        if expires < now:  # verify() refuses these already; a cache never extends a lifetime
            raise CredentialRejected(f"credential expired at {expires}")
        if not nonce or len(nonce) > 64 or "\n" in nonce:
            raise CredentialRejected("the credential's nonce is malformed")
        (fresh,) = self._group.append([_entry(nonce, phase, expires)])
        if not fresh:
            raise CredentialRejected(f"credential replayed: its nonce was already used for {phase}")

    def was_used(self, nonce: str) -> bool:
        """Whether a use of ``nonce`` (in any phase) is on record."""
        with self._engine.connect() as conn:
            return conn.execute(_USED, {"n": nonce}).first() is not None

    def _record(self, entries: list[bytes]) -> list[int]:
        """Insert every use in one transaction; 1 for a first use, 0 for a replay."""
        rows = []
        for entry in entries:
            nonce, phase, expires = entry.decode().split("\n")
            rows.append({"n": nonce, "p": phase, "e": int(expires)})
        try:
            with self._engine.begin() as conn:
                self._maybe_prune(conn)
                return [int(conn.execute(_INSERT, row).rowcount == 1) for row in rows]
        except SQLAlchemyError as exc:
            raise Unavailable("this node could not record the credential's use; try again") from exc

    def _maybe_prune(self, conn: Connection) -> None:
        now = int(self._clock())
        with self._prune_lock:
            if now - self._pruned_at < PRUNE_EVERY_S:
                return
            self._pruned_at = now
        # kept CLOCK_SKEW_S past expiry: a use is forgotten only once its credential cannot be
        # accepted again, even after this node's clock steps back by that much
        conn.execute(_PRUNE, {"cutoff": now - CLOCK_SKEW_S})
