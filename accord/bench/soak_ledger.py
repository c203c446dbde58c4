"""What the soak checks on the ledger: every acknowledged append is in the final log, and
every checkpoint it saw is consistent with every earlier one.

An append counts as acknowledged when a node's consent receipt carries its ledger index: the
node returns that only after the coordinator answered ``Append``, which it does only once the
entry is durable. The final log must hold, at that index, the event the receipt names (its
type, node and consent commitment). Checkpoints are fetched all along as an auditor would,
their signatures checked, each linked to the one before by a consistency proof, and at the
end each one to the final checkpoint as well.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from accord.audit import LedgerClient, check_note, recompute_root
from accord.consent.events import ConsentGranted, ConsentRevoked, decode
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import ConsistencyProof
from accord.crypto.note import Checkpoint
from accord.errors import AccordError
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc


@dataclass(frozen=True)
class AckedAppend:
    """A ledger append a receipt acknowledged: the event it must find at ``index``."""

    index: int
    kind: str  # ConsentGranted.TYPE or ConsentRevoked.TYPE
    node: str
    consent: bytes


@dataclass(frozen=True)
class PendingReceipt:
    """A receipt that said "on its way": the node's outbox owes the ledger this event."""

    node: str
    local_ref: str
    record_id: str
    kind: str
    consent: bytes


@dataclass
class AckBook:
    acked: list[AckedAppend] = field(default_factory=list)
    pending: list[PendingReceipt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, append: AckedAppend) -> None:
        with self._lock:
            self.acked.append(append)

    def owe(self, receipt: PendingReceipt) -> None:
        with self._lock:
            self.pending.append(receipt)

    def snapshot(self) -> tuple[list[AckedAppend], list[PendingReceipt]]:
        with self._lock:
            return list(self.acked), list(self.pending)


def consistency_problem(old: Checkpoint, new: Checkpoint, hashes: tuple[bytes, ...]) -> str | None:
    """None when ``new`` extends ``old``; otherwise what is wrong."""
    if new.size < old.size:
        return f"rollback: size {old.size} then {new.size}"
    if new.size == old.size or old.size == 0:
        if new.size == old.size and new.root_hash != old.root_hash:
            return f"fork: two roots for size {old.size}"
        return None
    try:
        ConsistencyProof(old.size, new.size, old.root_hash, new.root_hash, hashes).verify()
    except CryptoError as exc:
        return f"{old.size} -> {new.size}: {exc}"
    return None


@dataclass
class CheckpointChain:
    """Checkpoints as fetched, each proven to extend the last one proven."""

    verifier: NoteVerifier
    observed: dict[tuple[int, bytes], Checkpoint] = field(default_factory=dict)
    linked: Checkpoint | None = None
    links: int = 0
    inconsistent: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def step(self, stub: ledger_pb2_grpc.LedgerStub, timeout_s: float = 5.0) -> Checkpoint:
        """Fetch the latest checkpoint and link it; RPC errors propagate (the caller retries)."""
        note = stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=timeout_s).note
        new = check_note(note, self.verifier, what="a checkpoint served during the soak")
        with self._lock:
            self.observed[(new.size, new.root_hash)] = new
            old = self.linked
        if old is None:
            self.linked = new
            return new
        hashes: tuple[bytes, ...] = ()
        if new.size > old.size > 0:
            reply = stub.GetConsistencyProof(
                ledger_pb2.GetConsistencyProofRequest(size1=old.size, size2=new.size),
                timeout=timeout_s,
            )
            hashes = tuple(bytes(h) for h in reply.hashes)
        problem = consistency_problem(old, new, hashes)
        with self._lock:
            if problem is None:
                self.links += 1 if new != old else 0
                self.linked = new
            else:
                self.inconsistent.append(problem)
        return new

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.observed)


@dataclass(frozen=True)
class LedgerVerdict:
    acked: int
    lost: list[int]
    final_size: int
    checkpoints: int
    links: int
    inconsistent: list[str]

    def figures(self) -> dict[str, object]:
        return {
            "acked_appends": self.acked,
            "acked_appends_lost": len(self.lost),
            "lost_indexes": self.lost[:20],
            "final_tree_size": self.final_size,
            "checkpoints_observed": self.checkpoints,
            "checkpoint_links_verified": self.links,
            "checkpoints_inconsistent": len(self.inconsistent),
            "inconsistencies": self.inconsistent[:10],
        }


def _matches(append: AckedAppend, entry: ledger_pb2.LedgerEntry | None) -> bool:
    if entry is None:
        return False
    try:
        event = decode(bytes(entry.data))
    except AccordError:
        return False
    if not isinstance(event, ConsentGranted | ConsentRevoked):
        return False
    return (event.TYPE, event.node, event.consent) == (append.kind, append.node, append.consent)


def verify_final_log(
    client: LedgerClient,
    stub: ledger_pb2_grpc.LedgerStub,
    chain: CheckpointChain,
    acked: list[AckedAppend],
    wait_s: float = 60.0,
) -> LedgerVerdict:
    """Read the whole final log as the auditor; check every acknowledged append is in it with
    the event its receipt named, the root recomputes, and every checkpoint seen extends into
    it."""
    wanted = max((a.index for a in acked), default=-1) + 1
    give_up = time.monotonic() + wait_s
    while (final := client.checkpoint().checkpoint).size < wanted:
        if time.monotonic() > give_up:
            break  # the missing tail counts as lost below
        time.sleep(0.5)
    entries = {e.index: e for e in client.entries(final.size)}
    lost = sorted({a.index for a in acked if not _matches(a, entries.get(a.index))})
    inconsistent = list(chain.inconsistent)
    if recompute_root(client, final) != final.size:
        inconsistent.append(f"the final log's entries do not hash to its root at {final.size}")
    for old in sorted(chain.observed.values(), key=lambda c: c.size):
        hashes: tuple[bytes, ...] = ()
        if final.size > old.size > 0:
            reply = stub.GetConsistencyProof(
                ledger_pb2.GetConsistencyProofRequest(size1=old.size, size2=final.size),
                timeout=30,
            )
            hashes = tuple(bytes(h) for h in reply.hashes)
        problem = consistency_problem(old, final, hashes)
        if problem is not None:
            inconsistent.append(f"against the final checkpoint: {problem}")
    seen = {*chain.observed, (final.size, final.root_hash)}
    return LedgerVerdict(len(acked), lost, final.size, len(seen), chain.links, inconsistent)
