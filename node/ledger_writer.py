"""The node's connection to the coordinator's ledger: append events, fetch proofs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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

    def close(self) -> None:
        self._channel.close()

    def append(self, events: Sequence[Event]) -> list[int]:
        """Append in order; return each event's ledger index once it is durable."""
        indexes: list[int] = []
        for batch in batches([encode(e) for e in events]):
            request = ledger_pb2.AppendRequest(entries=batch)
            try:
                reply = call_with_retry(
                    partial(self.stub.Append, request, timeout=30), deadline_s=self._retry_s
                )
            except grpc.RpcError as err:
                raise self._error(err) from err
            indexes.extend(a.index for a in reply.appended)
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
