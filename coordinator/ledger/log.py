"""The ledger as a library: append durably, publish checkpoints, prove, serve entries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from accord.clock import Clock, system_clock
from accord.consent.events import ConsentStatus, decode
from accord.coordinator.ledger.checkpointer import Checkpointer
from accord.coordinator.ledger.consent_index import ConsentIndex, check_author
from accord.coordinator.ledger.sequencer import Appended, Head, Sequencer
from accord.coordinator.ledger.store import SqlLedgerStore, StoredCheckpoint, StoredEntry
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import consistency_proof, inclusion_proof, root_at
from accord.crypto.note import verify_checkpoint
from accord.crypto.statusmap import StatusProof
from accord.crypto.tiles import MAX_ENTRY_BYTES
from accord.errors import InvalidInput, NotReady

MAX_ENTRIES_PER_APPEND = 1000
MAX_APPEND_BYTES = 4 * 1024 * 1024
MAX_ENTRIES_PER_READ = 1000
APPEND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ConsentProof:
    checkpoint: StoredCheckpoint
    consent: bytes
    status: ConsentStatus | None
    proof: StatusProof


@dataclass(frozen=True)
class ProvenExtension:
    checkpoint: StoredCheckpoint
    size1: int
    proof: list[bytes]


class Ledger:
    """The coordinator's consent ledger. ``start()`` before use, ``stop()`` to flush."""

    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner,
        *,
        tiles_dir: Path | None = None,
        checkpoint_interval_s: float = 0.5,
        clock: Clock = system_clock,
        events: bool = True,
        on_commit: Callable[[Head, list[tuple[int, bytes, str]]], None] = lambda head, new: None,
    ) -> None:
        """``events``: entries must be Accord ledger events (validated, indexed into the status
        map); False keeps the log opaque (used by tests of the log mechanics alone)."""
        self.store = SqlLedgerStore(engine)
        self.signer = signer
        self.consents = ConsentIndex() if events else None
        self.sequencer = Sequencer(
            self.store, clock=clock, index=self.consents, on_commit=on_commit
        )
        self.checkpointer = Checkpointer(
            self.store,
            signer,
            self.sequencer.head,
            tiles_dir=tiles_dir,
            interval_s=checkpoint_interval_s,
            clock=clock,
        )

    @property
    def origin(self) -> str:
        return self.signer.name

    def start(self) -> None:
        self.sequencer.start()
        self.checkpointer.start()

    def stop(self) -> None:
        self.sequencer.stop()
        self.checkpointer.stop()

    def append(self, entries: Sequence[bytes], appended_by: str) -> list[Appended]:
        """Append ``entries`` in order; return only once they are durable."""
        if not 1 <= len(entries) <= MAX_ENTRIES_PER_APPEND:
            raise InvalidInput(
                f"append between 1 and {MAX_ENTRIES_PER_APPEND} entries per request, "
                f"not {len(entries)}"
            )
        for i, data in enumerate(entries):
            if not 1 <= len(data) <= MAX_ENTRY_BYTES:
                raise InvalidInput(
                    f"entries[{i}] is {len(data)} bytes; an entry holds 1 to {MAX_ENTRY_BYTES}"
                )
        if self.consents is not None:
            for i, data in enumerate(entries):
                try:
                    check_author(decode(data), appended_by)
                except InvalidInput as exc:
                    raise InvalidInput(f"entries[{i}]: {exc}") from exc
        total = sum(len(e) for e in entries)
        if total > MAX_APPEND_BYTES:
            raise InvalidInput(
                f"this append carries {total} bytes; send at most {MAX_APPEND_BYTES} per request"
            )
        return self.sequencer.submit(list(entries), appended_by).result(timeout=APPEND_TIMEOUT_S)

    def checkpoint(self) -> StoredCheckpoint:
        return self.checkpointer.latest()

    def _tree_size(self, tree_size: int) -> int:
        latest = self.checkpoint().size
        if tree_size == 0:
            return latest
        durable = self.sequencer.head().size
        if tree_size > durable:
            raise InvalidInput(f"tree_size {tree_size} is beyond the log's size {durable}")
        return tree_size

    def inclusion_proof(self, index: int, tree_size: int = 0) -> tuple[int, bytes, list[bytes]]:
        """(tree size, leaf hash, proof) for entry ``index``."""
        size = self._tree_size(tree_size)
        if index >= size:
            raise InvalidInput(f"index {index} is not in a tree of size {size}")
        entry = self.store.get_entries(index, 1)[0]
        return size, entry.leaf_hash, inclusion_proof(self.store, index, size)

    def consistency_proof(self, size1: int, size2: int = 0) -> tuple[int, list[bytes]]:
        size2 = self._tree_size(size2)
        if not 0 < size1 <= size2:
            raise InvalidInput(
                f"a consistency proof needs 0 < size1 <= size2; got {size1}, {size2}"
            )
        return size2, consistency_proof(self.store, size1, size2)

    def entries(self, start: int, count: int) -> list[StoredEntry]:
        if not 1 <= count <= MAX_ENTRIES_PER_READ:
            raise InvalidInput(f"read between 1 and {MAX_ENTRIES_PER_READ} entries, not {count}")
        durable = self.sequencer.head().size
        if start >= durable:
            raise InvalidInput(f"start {start} is beyond the log's size {durable}")
        return self.store.get_entries(start, min(count, durable - start))

    def prove_extends(self, old_note: str) -> ProvenExtension:
        """Check ``old_note`` is a checkpoint of this log; prove the latest one extends it."""
        try:
            old = verify_checkpoint(old_note, [self.signer.verifier], origin=self.origin)
        except CryptoError as exc:
            raise InvalidInput(f"old_checkpoint: {exc}") from exc
        latest = self.checkpoint()
        if old.size > latest.size:
            raise InvalidInput(
                f"old_checkpoint has size {old.size}, beyond the latest checkpoint {latest.size}"
            )
        if old.size and root_at(self.store, old.size) != old.root_hash:
            raise NotReady(
                f"this log's root at size {old.size} differs from your checkpoint's: the log "
                "was rewritten since you saw it; keep your checkpoint as evidence"
            )
        proof = consistency_proof(self.store, old.size, latest.size) if old.size else []
        return ProvenExtension(latest, old.size, proof)

    def consent_status(self, consent: bytes) -> ConsentProof:
        """The status of a consent as of the latest checkpoint, with its map proof."""
        if self.consents is None:
            raise NotReady("this ledger does not index consent events")
        if len(consent) != 32:
            raise InvalidInput(f"consent must be a 32-byte commitment, got {len(consent)} bytes")
        checkpoint, status_map = self.checkpointer.latest_with_status_map()
        status, proof = self.consents.prove(consent, checkpoint.size, status_map)
        return ConsentProof(checkpoint, consent, status, proof)
