"""The node as a witness of the coordinator's ledger (c2sp.org/tlog-witness semantics).

A witness keeps, per log origin, the newest checkpoint it cosigned. Given a newer checkpoint
and a consistency proof from that one, it verifies the log's signature and the proof, records
the new checkpoint and returns its cosignature (c2sp.org/tlog-cosignature). It refuses a
checkpoint signed by another key, one older than what it cosigned, and one inconsistent with
it: two checkpoints of one size with different roots are a fork, and a coordinator that shows
different logs to different parties cannot collect cosignatures from witnesses that saw the
other view. Checking the old size and recording the new checkpoint happen atomically. A fork it
refuses is also kept as an alarm with both checkpoints (:mod:`accord.node.ledger_watch`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from accord.clock import Clock, system_clock
from accord.crypto.cosignature import cosign
from accord.crypto.errors import CryptoError, MalformedInput
from accord.crypto.keys import NoteSigner, NoteVerifier
from accord.crypto.merkle import HASH_SIZE, verify_consistency
from accord.crypto.note import Checkpoint, Note, NoteSignature, verify_checkpoint
from accord.errors import Conflict, InvalidInput, NotFound, NotPermitted, NotReady
from accord.node.ledger_watch import FORK, WITNESS, Held, record_alarm
from accord.node.models import WitnessCheckpoint

log = structlog.get_logger(__name__)

MAX_PROOF_HASHES = 63
"""c2sp.org/tlog-witness: a client sends at most 63 consistency proof hashes."""


@dataclass(frozen=True)
class Witnessed:
    """The newest checkpoint of a log this witness cosigned (size 0 and no note: none yet)."""

    origin: str
    size: int
    root_hash: bytes
    note: str


class Witness:
    """Cosigns checkpoints of the logs whose keys it trusts (here: the coordinator's)."""

    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner,
        logs: Sequence[NoteVerifier],
        clock: Clock = system_clock,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._logs = {key.name: key for key in logs}
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._signer.name

    def _log_key(self, origin: str) -> NoteVerifier:
        key = self._logs.get(origin)
        if key is None:
            raise NotFound(
                f"this witness does not witness log {origin[:100]!r}; it witnesses "
                f"{', '.join(sorted(self._logs))}"
            )
        return key

    def latest(self, origin: str) -> Witnessed:
        self._log_key(origin)
        with Session(self._engine) as session:
            row = session.get(WitnessCheckpoint, origin)
            if row is None:
                return Witnessed(origin, 0, b"", "")
            return Witnessed(origin, row.size, bytes(row.root_hash), row.note)

    def add_checkpoint(self, old_size: int, note: str, proof: Sequence[bytes]) -> NoteSignature:
        """Verify ``note`` against the log's key and ``proof``, record it, and cosign it."""
        checkpoint = self._verify(note, old_size, proof)
        with self._lock, Session(self._engine) as session:
            row = session.get(WitnessCheckpoint, checkpoint.origin, with_for_update=True)
            held_size = row.size if row is not None else 0
            if checkpoint.size < held_size:
                # A stale checkpoint or a rolled-back log: a note alone cannot tell them apart
                # (the node's ledger watch can: it asks the log for its latest).
                log.warning(
                    "refused an older checkpoint",
                    origin=checkpoint.origin,
                    size=checkpoint.size,
                    cosigned=held_size,
                )
                raise InvalidInput(
                    f"checkpoint {checkpoint.size} of {checkpoint.origin} is older than checkpoint "
                    f"{held_size} this witness cosigned; a witness never goes back"
                )
            if old_size != held_size:
                raise NotReady(
                    f"this witness last cosigned size {held_size} of {checkpoint.origin}; send "
                    f"old_size {held_size} and a consistency proof from it"
                )
            if row is not None:
                try:
                    self._check_consistent(row, checkpoint, note, proof)
                except Conflict as exc:
                    evidence = Held(row.size, bytes(row.root_hash), row.note)
                    session.rollback()
                    self._keep_evidence(evidence, checkpoint, note, str(exc))
                    raise
            now = int(self._clock())
            if row is None:
                row = WitnessCheckpoint(
                    origin=checkpoint.origin, size=0, root_hash=b"", note="", cosigned_at=0
                )
            row.size = checkpoint.size
            row.root_hash = checkpoint.root_hash
            row.note = _log_signed_only(note, self._logs[checkpoint.origin])
            row.cosigned_at = now
            session.add(row)
            session.commit()
        log.info("cosigned checkpoint", origin=checkpoint.origin, size=checkpoint.size)
        return cosign(Note.parse(note).text, self._signer, now)

    def _keep_evidence(self, held: Held, new: Checkpoint, note: str, reason: str) -> None:
        """Record a fork this witness refused as an alarm (``accord node status`` shows it)."""
        with Session(self._engine) as session:
            record_alarm(
                session,
                origin=new.origin,
                source=WITNESS,
                kind=FORK,
                detail=reason,
                held=held,
                served_size=new.size,
                served_note=_log_signed_only(note, self._logs[new.origin]),
                now=int(self._clock()),
            )
            session.commit()

    def _verify(self, note: str, old_size: int, proof: Sequence[bytes]) -> Checkpoint:
        try:
            origin = Note.parse(note).text.split("\n", 1)[0]
        except CryptoError as exc:
            raise InvalidInput(f"checkpoint: {exc}") from exc
        key = self._log_key(origin)
        try:
            checkpoint = verify_checkpoint(note, [key], origin=origin)
        except MalformedInput as exc:
            raise InvalidInput(f"checkpoint: {exc}") from exc
        except CryptoError as exc:
            raise NotPermitted(
                f"the checkpoint is not signed by {key.name}+{key.key_id.hex()}: {exc}"
            ) from exc
        if len(proof) > MAX_PROOF_HASHES:
            raise InvalidInput(f"a consistency proof has at most {MAX_PROOF_HASHES} hashes")
        if any(len(h) != HASH_SIZE for h in proof):
            raise InvalidInput(f"every consistency proof hash is {HASH_SIZE} bytes")
        if old_size in (0, checkpoint.size) and proof:
            raise InvalidInput(
                "the consistency proof must be empty when old_size is 0 or equals the "
                "checkpoint's size"
            )
        return checkpoint

    def _check_consistent(
        self, held: WitnessCheckpoint, new: Checkpoint, note: str, proof: Sequence[bytes]
    ) -> None:
        root = bytes(held.root_hash)
        if new.size == held.size:
            if new.root_hash != root:
                log.warning("fork: same size, different root", origin=new.origin, note=note)
                raise Conflict(
                    f"fork: this witness cosigned a different checkpoint of size {held.size} of "
                    f"{new.origin} (root {_short(root)}, not {_short(new.root_hash)})"
                )
            held_text = Note.parse(held.note).text
            if Note.parse(note).text != held_text:
                log.warning("fork: same tree, different extensions", origin=new.origin, note=note)
                raise Conflict(
                    f"fork: this witness cosigned checkpoint {held.size} of {new.origin} with "
                    "different extension lines"
                )
            return
        if held.size == 0:
            return  # the empty tree is a prefix of every tree
        try:
            verify_consistency(held.size, new.size, root, new.root_hash, list(proof))
        except CryptoError as exc:
            # Signed by the log and inconsistent with what we cosigned: keep it as evidence.
            log.warning("inconsistent checkpoint", origin=new.origin, note=note, reason=str(exc))
            raise Conflict(
                f"checkpoint {new.size} of {new.origin} is not consistent with checkpoint "
                f"{held.size} (root {_short(root)}) this witness cosigned: {exc}"
            ) from exc


def _short(root: bytes) -> str:
    return root.hex()[:16]


def _log_signed_only(note: str, key: NoteVerifier) -> str:
    """The note with only the log's own signature line(s), as evidence anyone can check."""
    parsed = Note.parse(note)
    own = tuple(s for s in parsed.signatures if (s.name, s.key_id) == (key.name, key.key_id))
    return Note(parsed.text, own).encode()
