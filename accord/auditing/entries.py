"""The ledger's entries up to a verified checkpoint, re-hashed to its root and decoded.

:meth:`AuditClient.verified_events` fetches every entry once, runs
:func:`accord.audit.recompute_root` over them (so a rewritten entry or node fails the audit
before anything is concluded from it) and decodes each into an Accord event. An entry that is
not a well-formed event is kept with the reason, so a report can say so instead of silently
skipping it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from accord.audit import AuditFailure, LedgerClient, recompute_root
from accord.consent.events import Event, SealedDataUse, Use, decode, open_data_use
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import ConsistencyProof
from accord.crypto.note import Checkpoint
from accord.errors import InvalidInput, Unavailable
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.client import describe_rpc_error, rpc_code


@dataclass(frozen=True)
class LedgerEvent:
    """One ledger entry: its index, and the event it holds (None with ``problem`` if none)."""

    index: int
    event: Event | None
    problem: str | None = None


# What the auditor's key reads in a sealed data use: its session and its uses.
Opener = Callable[[SealedDataUse], tuple[str, tuple[Use, ...]]]


def auditor_opener(key_pem: bytes) -> Opener:
    """An :data:`Opener` with the auditor's private key (its ``tls.key``, PEM)."""
    return lambda event: open_data_use(event, key_pem)


def decode_entry(index: int, data: bytes) -> LedgerEvent:
    try:
        return LedgerEvent(index, decode(data))
    except InvalidInput as exc:
        return LedgerEvent(index, None, str(exc))


class AuditClient(LedgerClient):
    """A :class:`LedgerClient` that also keeps the entries it re-hashes and asks for proofs."""

    def __init__(self, channel: grpc.Channel, verifier: NoteVerifier, target: str) -> None:
        super().__init__(channel, verifier, target)
        self._proofs = ledger_pb2_grpc.LedgerStub(channel)
        self._kept: list[ledger_pb2.LedgerEntry] | None = None

    def consistency(self, size1: int, size2: int, root1: bytes, root2: bytes) -> ConsistencyProof:
        """The log's consistency proof between two trees, verified.

        Raises :class:`AuditFailure` when the log cannot produce one or it does not verify
        (evidence that the two checkpoints are not one history), :class:`Unavailable` when the
        log cannot be reached (evidence of nothing).
        """
        if size1 == 0:
            return ConsistencyProof(0, size2, root1, root2, ())  # the empty tree prefixes all
        if size1 == size2:
            proof = ConsistencyProof(size1, size2, root1, root2, ())
        else:
            try:
                reply = self._proofs.GetConsistencyProof(
                    ledger_pb2.GetConsistencyProofRequest(size1=size1, size2=size2), timeout=30
                )
            except grpc.RpcError as err:
                message = describe_rpc_error(err, f"ledger at {self.target}")
                if rpc_code(err) in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise Unavailable(message) from err  # not evidence of anything
                raise AuditFailure(
                    f"the log cannot prove checkpoint {size2} consistent with {size1}: {message}"
                ) from err
            hashes = tuple(bytes(h) for h in reply.hashes)
            proof = ConsistencyProof(size1, size2, root1, root2, hashes)
        try:
            proof.verify()
        except CryptoError as exc:
            raise AuditFailure(
                f"checkpoint {size2} is not consistent with checkpoint {size1}: {exc}"
            ) from exc
        return proof

    def entries(self, size: int) -> Iterator[ledger_pb2.LedgerEntry]:
        for entry in super().entries(size):
            if self._kept is not None:
                self._kept.append(entry)
            yield entry

    def verified_events(self, checkpoint: Checkpoint) -> list[LedgerEvent]:
        """Every entry below ``checkpoint.size``, re-hashed to its signed root, decoded."""
        self._kept = []
        try:
            recompute_root(self, checkpoint)
            kept = self._kept
        finally:
            self._kept = None
        return [decode_entry(e.index, bytes(e.data)) for e in kept]
