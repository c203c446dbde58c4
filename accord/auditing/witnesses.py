"""Witness cosigning from the auditor's side: collect K cosignatures or name the fork.

Every node of the registry is a witness (c2sp.org/tlog-witness semantics over gRPC). For each
one the auditor asks what it last cosigned, fetches from the coordinator a consistency proof
from there to the checkpoint being witnessed, and asks it to cosign. A coordinator that showed
another party a different log (a split view) is caught twice over: the witnesses that saw the
other view refuse, and the auditor holds evidence anyone can check, two checkpoints the
coordinator signed that no consistency proof connects.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import grpc

from accord.audit import AuditFailure, VerifiedCheckpoint, check_note
from accord.crypto.cosignature import Cosignature, parse_line, verify_cosignature
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import ConsistencyProof
from accord.crypto.note import Checkpoint, Note
from accord.errors import AccordError, InvalidInput
from accord.proto.v1 import audit_pb2, audit_pb2_grpc
from accord.registry import RegistryView
from accord.rpc.client import describe_rpc_error, rpc_code, rpc_details
from accord.rpc.tls import PartyCredentials

WITNESS_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WitnessNode:
    """A registered node as a witness: its name, where it serves, its cosigning key."""

    name: str
    endpoint: str
    key: NoteVerifier


def witnesses_from_registry(view: RegistryView) -> list[WitnessNode]:
    """Every node of a verified registry; each cosigns with its registered identity key."""
    return [
        WitnessNode(n.channel, n.endpoint, NoteVerifier(n.channel, n.identity_key))
        for n in view.nodes
    ]


class WitnessUnreachable(AccordError):
    """A witness did not answer."""


class WitnessRefused(AccordError):
    """A witness answered with an error; ``code`` is the gRPC status name."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class WitnessLink(Protocol):
    def latest(self, origin: str) -> tuple[int, str]: ...

    def add_checkpoint(self, old_size: int, note: str, proof: Sequence[bytes]) -> str: ...


class GrpcWitness:
    """accord.v1.Witness at one node, over the auditor's mTLS credentials."""

    def __init__(self, channel: grpc.Channel, name: str) -> None:
        self._stub = audit_pb2_grpc.WitnessStub(channel)
        self._name = name

    def _fail(self, err: grpc.RpcError) -> AccordError:
        code = rpc_code(err)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return WitnessUnreachable(describe_rpc_error(err, f"witness {self._name}"))
        return WitnessRefused(rpc_details(err), code.name if code is not None else "UNKNOWN")

    def latest(self, origin: str) -> tuple[int, str]:
        try:
            reply = self._stub.GetLatest(
                audit_pb2.GetLatestRequest(origin=origin), timeout=WITNESS_TIMEOUT_S
            )
        except grpc.RpcError as err:
            raise self._fail(err) from err
        return int(reply.size), str(reply.note)

    def add_checkpoint(self, old_size: int, note: str, proof: Sequence[bytes]) -> str:
        try:
            reply = self._stub.AddCheckpoint(
                audit_pb2.AddCheckpointRequest(
                    old_size=old_size, checkpoint=note, consistency_proof=list(proof)
                ),
                timeout=WITNESS_TIMEOUT_S,
            )
        except grpc.RpcError as err:
            raise self._fail(err) from err
        return str(reply.cosignature)


@contextmanager
def grpc_witness(credentials: PartyCredentials, witness: WitnessNode) -> Iterator[WitnessLink]:
    with credentials.channel(witness.endpoint, witness.name) as channel:
        yield GrpcWitness(channel, witness.name)


Consistency = Callable[[int, int, bytes, bytes], ConsistencyProof]
"""The log's verified consistency proof between two trees; raises AuditFailure if none."""


@dataclass(frozen=True)
class Fork:
    """Evidence of a split view: a checkpoint the coordinator signed that a witness holds,
    which is not consistent with the one being witnessed."""

    witness: str
    size: int
    root: bytes
    note: str
    reason: str


@dataclass(frozen=True)
class WitnessResult:
    witness: str
    held_size: int | None = None  # the size the witness had cosigned before (None: unknown)
    cosignature: Cosignature | None = None
    problem: str | None = None
    fork: Fork | None = None

    @property
    def status(self) -> str:
        if self.cosignature is not None:
            return "cosigned"
        if self.fork is not None:
            return "fork"
        return "no cosignature"


def _b64(root: bytes) -> str:
    return base64.b64encode(root).decode()


def inspect(
    link: WitnessLink,
    witness: WitnessNode,
    target: Checkpoint,
    coordinator: NoteVerifier,
    consistency: Consistency,
) -> tuple[Checkpoint | None, Fork | None, ConsistencyProof | None]:
    """What ``witness`` last cosigned, whether it forks from ``target``, and the proof to send.

    Raises :class:`WitnessUnreachable` or :class:`WitnessRefused` if the witness does not
    answer, :class:`AuditFailure` if it holds something the coordinator did not sign.
    """
    size, note = link.latest(target.origin)
    if size == 0 and not note:
        return None, None, None
    held = check_note(note, coordinator, what=f"the checkpoint witness {witness.name} holds")
    if held.size != size:
        raise AuditFailure(
            f"witness {witness.name} reports size {size} but holds checkpoint {held.size}"
        )
    if held.size == target.size:
        if held.root_hash != target.root_hash:
            return (
                held,
                Fork(
                    witness.name,
                    held.size,
                    held.root_hash,
                    note,
                    f"two checkpoints of size {held.size} with different roots",
                ),
                None,
            )
        return held, None, None
    small, big = sorted((held, target), key=lambda c: c.size)
    try:
        proof = consistency(small.size, big.size, small.root_hash, big.root_hash)
    except AuditFailure as exc:
        return (
            held,
            Fork(
                witness.name,
                held.size,
                held.root_hash,
                note,
                f"no consistency proof connects checkpoints {small.size} and {big.size} ({exc})",
            ),
            None,
        )
    return held, None, proof if held.size < target.size else None


def request_cosignature(
    link: WitnessLink,
    witness: WitnessNode,
    target: VerifiedCheckpoint,
    coordinator: NoteVerifier,
    consistency: Consistency,
) -> WitnessResult:
    """Ask one witness to cosign ``target``; never raises for the witness's own failures."""
    checkpoint = target.checkpoint
    try:
        held, fork, proof = inspect(link, witness, checkpoint, coordinator, consistency)
    except WitnessUnreachable as exc:
        return WitnessResult(witness.name, problem=f"unreachable: {exc}")
    except (WitnessRefused, AuditFailure) as exc:
        return WitnessResult(witness.name, problem=str(exc))
    held_size = held.size if held is not None else 0
    if held is not None and held.size > checkpoint.size and fork is None:
        return WitnessResult(
            witness.name,
            held_size,
            problem=f"it already cosigned the newer checkpoint {held.size}; audit the latest one",
        )
    if held is not None and held.size > checkpoint.size:
        return WitnessResult(
            witness.name, held_size, problem="it holds a newer, forked view", fork=fork
        )
    hashes = proof.proof if proof is not None else ()
    try:
        line = link.add_checkpoint(held_size, target.note, hashes)
    except WitnessUnreachable as exc:
        return WitnessResult(witness.name, held_size, problem=f"unreachable: {exc}", fork=fork)
    except WitnessRefused as exc:
        return WitnessResult(witness.name, held_size, problem=f"refused: {exc}", fork=fork)
    try:
        cosignature = verify_cosignature(
            Note.parse(target.note).text, parse_line(line), witness.key
        )
    except CryptoError as exc:
        return WitnessResult(
            witness.name, held_size, problem=f"returned an invalid cosignature: {exc}", fork=fork
        )
    if fork is not None:  # a witness that cosigns both sides of a fork is no witness
        return WitnessResult(
            witness.name,
            held_size,
            problem="it cosigned although it holds a checkpoint this one is inconsistent with",
            fork=fork,
        )
    return WitnessResult(witness.name, held_size, cosignature=cosignature)


def require_quorum(results: Sequence[WitnessResult], quorum: int, target: Checkpoint) -> None:
    """Raise :class:`AuditFailure` on any proven fork, or with fewer than ``quorum`` cosigners."""
    cosigned = [r for r in results if r.cosignature is not None]
    forks = [r.fork for r in results if r.fork is not None]
    if forks:
        held = sorted({(f.size, f.root) for f in forks})
        views = "; ".join(f"checkpoint {size} with root {_b64(root)}" for size, root in held)
        names = ", ".join(f.witness for f in forks)
        # a witness holding a larger tree that does not lead here: the log went back
        what = "a split view"
        if any(f.size > target.size for f in forks):
            what += " or a rolled-back log (e.g. a coordinator restored from an older backup)"
        raise AuditFailure(
            f"fork: the coordinator signed checkpoint {target.size} of {target.origin} with root "
            f"{_b64(target.root_hash)}, and also {views}, held by witness "
            f"{names} ({forks[0].reason}): {what}; {len(cosigned)} of the {quorum} "
            "cosignatures required"
        )
    if len(cosigned) < quorum:
        reasons = "; ".join(
            f"{r.witness}: {r.problem}" for r in results if r.cosignature is None and r.problem
        )
        raise AuditFailure(
            f"only {len(cosigned)} of the {quorum} cosignatures required for checkpoint "
            f"{target.size}: {reasons}"
        )


def check_quorum_size(quorum: int, witnesses: Sequence[WitnessNode]) -> None:
    if quorum < 1:
        raise InvalidInput("--witnesses must be at least 1")
    if quorum > len(witnesses):
        raise InvalidInput(
            f"--witnesses {quorum} asks for more cosignatures than the registry has nodes "
            f"({len(witnesses)})"
        )


@dataclass(frozen=True)
class WitnessStatus:
    """What one witness holds, as seen from a checkpoint (for reports; changes nothing)."""

    witness: str
    state: str  # consistent, fork, none yet, unreachable, invalid
    detail: str


def witness_status(
    link: WitnessLink,
    witness: WitnessNode,
    target: Checkpoint,
    coordinator: NoteVerifier,
    consistency: Consistency,
) -> WitnessStatus:
    """Read-only: how what ``witness`` last cosigned relates to ``target``."""
    try:
        held, fork, _ = inspect(link, witness, target, coordinator, consistency)
    except WitnessUnreachable as exc:
        return WitnessStatus(witness.name, "unreachable", str(exc))
    except (WitnessRefused, AuditFailure) as exc:
        return WitnessStatus(witness.name, "invalid", str(exc))
    if fork is not None:
        return WitnessStatus(
            witness.name,
            "fork",
            f"holds checkpoint {fork.size} with root {_b64(fork.root)}: {fork.reason}",
        )
    if held is None:
        return WitnessStatus(witness.name, "none yet", "has not cosigned a checkpoint of this log")
    if held.size == target.size:
        return WitnessStatus(witness.name, "consistent", "cosigned this very tree")
    if held.size < target.size:
        detail = f"last cosigned checkpoint {held.size}; this one extends it (proof verified)"
    else:
        detail = f"has cosigned the newer checkpoint {held.size}, which extends this one"
    return WitnessStatus(witness.name, "consistent", detail)
