"""The node's connection to the coordinator's ledger: append events, fetch proofs.

Appends from concurrent callers (one per scoring request, say) share requests: while
``MAX_IN_FLIGHT`` appends are on their way, newcomers queue, and the next caller to get a turn
sends everything queued in one request (group commit, as the ledger's own sequencer does with
its fsyncs). Each caller still returns only once the coordinator has made *its* events durable,
with their indexes, so a use is on the ledger before the data is read, as before; what changes
is the number of round trips and of RPCs each party handles under load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import grpc

from accord.consent.events import Event, encode
from accord.errors import AccordError, InvalidInput, NotPermitted, Unavailable
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.client import call_with_retry, describe_rpc_error, rpc_code
from accord.rpc.tls import PartyCredentials

CHUNK = 500
MAX_BYTES = 3 * 1024 * 1024  # under the ledger's 4 MiB per append
RETRY_S = 10.0
MAX_IN_FLIGHT = 2  # appends on their way at once; the rest queue and go together


class EventLedger(Protocol):
    """Where a node writes its events: :class:`LedgerWriter` over gRPC in production."""

    def append(self, events: Sequence[Event]) -> list[int]: ...


class LedgerWriter:
    def __init__(
        self,
        credentials: PartyCredentials,
        coordinator: str,
        coordinator_party: str,
        retry_s: float = RETRY_S,
    ) -> None:
        self._retry_s = retry_s  # the outbox retries itself: it asks for one try (0)
        self._target = coordinator
        self._channel = credentials.channel(coordinator, coordinator_party)
        self.stub = ledger_pb2_grpc.LedgerStub(self._channel)
        self._group = AppendGroup(self._append_entries)

    def close(self) -> None:
        self._channel.close()

    def append(self, events: Sequence[Event]) -> list[int]:
        """Append in order; return each event's ledger index once it is durable."""
        return self._group.append([encode(e) for e in events])

    def _append_entries(self, entries: list[bytes]) -> list[int]:
        indexes: list[int] = []
        for batch in batches(entries):
            request = ledger_pb2.AppendRequest(entries=batch)
            try:
                reply = call_with_retry(
                    partial(self.stub.Append, request, timeout=30), deadline_s=self._retry_s
                )
            except grpc.RpcError as err:
                raise self._error(err) from err
            indexes.extend(a.index for a in reply.appended)
        if len(indexes) != len(entries):
            raise Unavailable(
                f"the ledger at {self._target} acknowledged {len(indexes)} of "
                f"{len(entries)} entries"
            )
        return indexes

    def _error(self, err: grpc.RpcError) -> AccordError:
        message = describe_rpc_error(err, f"the ledger at {self._target}")
        code = rpc_code(err)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidInput(message)
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return NotPermitted(message)
        return Unavailable(message)

    def call(self, method: str, request: object) -> object:
        try:
            return getattr(self.stub, method)(request, timeout=30)
        except grpc.RpcError as err:
            raise self._error(err) from err


class AppendGroup:
    """Group commit over a ``deliver`` function: concurrent callers' entries share requests.

    At most ``max_in_flight`` deliveries run at once; callers arriving meanwhile queue, and
    the next to get a turn delivers every queued caller's entries (up to one request's limits)
    in one call. Each caller returns its own indexes, or raises its own error."""

    def __init__(
        self,
        deliver: Callable[[list[bytes]], list[int]],
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._deliver = deliver
        self._max_in_flight = max_in_flight
        self._turn = threading.Condition()
        self._queued: list[_Queued] = []
        self._in_flight = 0

    def append(self, entries: list[bytes]) -> list[int]:
        """Append ``entries`` in order; their ledger indexes once they are durable."""
        mine = _Queued(entries)
        if not mine.entries:
            return []
        with self._turn:
            self._queued.append(mine)
        while True:
            with self._turn:
                # a caller whose events another caller took waits for that caller to settle
                while not mine.done and (mine.taken or self._in_flight >= self._max_in_flight):
                    self._turn.wait()
                if mine.done:
                    return mine.outcome()
                self._in_flight += 1
                batch = _take(self._queued)
            try:
                self._send(batch)
            finally:
                with self._turn:
                    for queued in batch:  # a bug in sending must not leave a caller waiting
                        if not queued.done:
                            queued.error = Unavailable("the ledger append did not complete")
                            queued.done = True
                    self._in_flight -= 1
                    self._turn.notify_all()

    def _send(self, batch: list[_Queued]) -> None:
        """Deliver ``batch`` (one caller's events, or several callers' in one request) and
        settle each caller's outcome; a refusal of a shared request is retried caller by
        caller, so that one caller's bad event never fails another's."""
        if len(batch) == 1:
            try:
                batch[0].indexes = self._deliver(batch[0].entries)
            except AccordError as exc:
                batch[0].error = exc
            batch[0].done = True
            return
        try:
            indexes = self._deliver([e for q in batch for e in q.entries])
        except (InvalidInput, NotPermitted):
            for queued in batch:
                self._send([queued])
            return
        except AccordError as exc:
            for queued in batch:
                queued.error, queued.done = exc, True
            return
        start = 0
        for queued in batch:
            queued.indexes = indexes[start : start + len(queued.entries)]
            queued.done = True
            start += len(queued.entries)


@dataclass
class _Queued:
    """One caller's encoded events, and their outcome once a sender settles it."""

    entries: list[bytes]
    taken: bool = False
    done: bool = False
    indexes: list[int] = field(default_factory=list)
    error: AccordError | None = None

    def outcome(self) -> list[int]:
        if self.error is not None:
            raise self.error
        return self.indexes


def _take(queued: list[_Queued]) -> list[_Queued]:
    """The oldest queued callers whose events fit one request (always at least the oldest)."""
    taken: list[_Queued] = []
    count = size = 0
    while queued:
        entries = queued[0].entries
        more, extra = len(entries), sum(len(e) for e in entries)
        if taken and (count + more > CHUNK or size + extra > MAX_BYTES):
            break
        queued[0].taken = True
        taken.append(queued.pop(0))
        count, size = count + more, size + extra
    return taken


def batches(entries: list[bytes]) -> Iterator[list[bytes]]:
    """Requests within the ledger's limits: at most CHUNK entries and MAX_BYTES each."""
    batch: list[bytes] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) == CHUNK or size + len(entry) > MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += len(entry)
    if batch:
        yield batch
