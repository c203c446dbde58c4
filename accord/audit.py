"""What a compliance officer runs: verify checkpoints and proofs against the coordinator's key.

Nothing here trusts the coordinator's word: every checkpoint is a signed note checked against
the provisioned verifier key, every proof is recomputed, and entries are re-hashed locally.
Failures raise :class:`AuditFailure` with a message naming what did not match.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import CompactRange, ConsistencyProof, InclusionProof, leaf_hash
from accord.crypto.note import Checkpoint, verify_checkpoint
from accord.errors import AccordError, InvalidInput
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.client import describe_rpc_error

PAGE = 1000


class AuditFailure(AccordError):
    """The log failed a check: the message says which, with the evidence."""


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    note: str


def read_checkpoint_file(path: Path, verifier: NoteVerifier) -> VerifiedCheckpoint:
    try:
        note = path.read_text()
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not a text checkpoint") from exc
    return VerifiedCheckpoint(check_note(note, verifier, what=str(path)), note)


def check_note(note: str, verifier: NoteVerifier, *, what: str) -> Checkpoint:
    try:
        return verify_checkpoint(note, [verifier], origin=verifier.name)
    except CryptoError as exc:
        raise AuditFailure(f"{what}: {exc}") from exc


class LedgerClient:
    """A verifying client of accord.v1.Ledger."""

    def __init__(self, channel: grpc.Channel, verifier: NoteVerifier, target: str) -> None:
        self._stub = ledger_pb2_grpc.LedgerStub(channel)
        self.verifier = verifier
        self.target = target

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(request, timeout=30)
        except grpc.RpcError as err:
            raise AuditFailure(describe_rpc_error(err, f"ledger at {self.target}")) from err

    def checkpoint(self) -> VerifiedCheckpoint:
        reply = self._call("GetCheckpoint", ledger_pb2.GetCheckpointRequest())
        note = reply.note  # type: ignore[attr-defined]
        return VerifiedCheckpoint(
            check_note(note, self.verifier, what="the latest checkpoint"), note
        )

    def entries(self, size: int) -> Iterator[ledger_pb2.LedgerEntry]:
        start = 0
        while start < size:
            count = min(PAGE, size - start)
            reply = self._call("GetEntries", ledger_pb2.GetEntriesRequest(start=start, count=count))
            page = list(reply.entries)  # type: ignore[attr-defined]
            if not page:
                raise AuditFailure(f"the ledger returned no entries from index {start}")
            for entry in page:
                if entry.index != start:
                    raise AuditFailure(
                        f"the ledger returned entry {entry.index} where {start} was due"
                    )
                yield entry
                start += 1

    def inclusion(self, index: int, checkpoint: Checkpoint) -> InclusionProof:
        reply = self._call(
            "GetInclusionProof",
            ledger_pb2.GetInclusionProofRequest(index=index, tree_size=checkpoint.size),
        )
        proof = InclusionProof(
            leaf_index=index,
            tree_size=checkpoint.size,
            root=checkpoint.root_hash,
            leaf_hash=bytes(reply.leaf_hash),  # type: ignore[attr-defined]
            proof=tuple(bytes(h) for h in reply.hashes),  # type: ignore[attr-defined]
        )
        try:
            proof.verify()
        except CryptoError as exc:
            raise AuditFailure(f"inclusion proof of entry {index}: {exc}") from exc
        return proof

    def consent_status(self, consent: bytes) -> ledger_pb2.ConsentStatusProof:
        reply = self._call("GetConsentStatus", ledger_pb2.GetConsentStatusRequest(consent=consent))
        assert isinstance(reply, ledger_pb2.ConsentStatusProof)
        return reply

    def prove_extends(self, old: VerifiedCheckpoint) -> tuple[VerifiedCheckpoint, ConsistencyProof]:
        reply = self._call("ProveExtends", ledger_pb2.ProveExtendsRequest(old_checkpoint=old.note))
        note = reply.checkpoint.note  # type: ignore[attr-defined]
        new = check_note(note, self.verifier, what="the latest checkpoint")
        proof = ConsistencyProof(
            size1=old.checkpoint.size,
            size2=new.size,
            root1=old.checkpoint.root_hash,
            root2=new.root_hash,
            proof=tuple(bytes(h) for h in reply.proof.hashes),  # type: ignore[attr-defined]
        )
        return VerifiedCheckpoint(new, note), proof


@dataclass(frozen=True)
class ExtendsReport:
    old_size: int
    new_size: int
    entries_checked: int


def verify_extends(client: LedgerClient, old: VerifiedCheckpoint) -> ExtendsReport:
    """Prove the current log extends ``old`` and that every entry hashes to the signed root."""
    # the latest signed checkpoint first: a log rolled back (a coordinator restored from an
    # older backup) cannot prove anything about ``old``, and its signed word is the evidence
    latest = client.checkpoint().checkpoint
    if latest.size < old.checkpoint.size:
        raise AuditFailure(
            f"the log shrank: the latest checkpoint the coordinator signed has {latest.size} "
            f"entries, yours {old.checkpoint.size}: it was rolled back; keep both checkpoints"
        )
    new, proof = client.prove_extends(old)
    if new.checkpoint.size < old.checkpoint.size:
        raise AuditFailure(
            f"the log shrank: latest checkpoint has {new.checkpoint.size} entries, yours "
            f"{old.checkpoint.size}"
        )
    if old.checkpoint.size:
        try:
            proof.verify()
        except CryptoError as exc:
            raise AuditFailure(
                f"checkpoint {new.checkpoint.size} is not consistent with your checkpoint "
                f"{old.checkpoint.size}: {exc}"
            ) from exc
    checked = recompute_root(client, new.checkpoint)
    return ExtendsReport(old.checkpoint.size, new.checkpoint.size, checked)


def recompute_root(client: LedgerClient, checkpoint: Checkpoint) -> int:
    """Re-hash every entry up to ``checkpoint.size`` and compare with the signed root."""
    served = CompactRange()
    mismatch: list[int] = []
    for entry in client.entries(checkpoint.size):
        if leaf_hash(entry.data) != entry.leaf_hash:
            mismatch.append(entry.index)
        served.append(bytes(entry.leaf_hash))
    if served.root() != checkpoint.root_hash:
        raise AuditFailure(
            f"the leaf hashes the ledger serves do not produce the signed root of checkpoint "
            f"{checkpoint.size}: the log's nodes were rewritten"
        )
    if mismatch:
        shown = ", ".join(str(i) for i in mismatch[:10])
        raise AuditFailure(
            f"entry {shown} {'does' if len(mismatch) == 1 else 'do'} not hash to the leaf the "
            f"log committed to in checkpoint {checkpoint.size}: the entry data was rewritten "
            "after it was appended"
        )
    return served.size


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def read_proof_file(path: Path) -> InclusionProof | ConsistencyProof:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a JSON object")
    try:
        if "leafIdx" in data:
            return InclusionProof.from_json(data)
        return ConsistencyProof.from_json(data)
    except CryptoError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
