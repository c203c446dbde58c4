"""Signs and publishes checkpoints (C2SP signed notes) and writes tlog tiles.

At most one checkpoint per ``interval`` while entries arrive (DESIGN.md asks for at least one
a second). Every published checkpoint is stored, so an auditor's old checkpoint can always be
proven against the current one; tiles are written before the ``checkpoint`` file that points
at them, so a tile reader never sees a checkpoint it cannot follow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from accord.clock import Clock, system_clock
from accord.coordinator.ledger.consent_index import status_extension
from accord.coordinator.ledger.sequencer import Head
from accord.coordinator.ledger.store import SqlLedgerStore, StoredCheckpoint
from accord.coordinator.ledger.tile_writer import TileWriter
from accord.crypto.keys import NoteSigner
from accord.crypto.note import Checkpoint, sign_checkpoint
from accord.crypto.statusmap import StatusMap

log = structlog.get_logger(__name__)

TIME_EXTENSION = "accord-time"


class Checkpointer:
    def __init__(
        self,
        store: SqlLedgerStore,
        signer: NoteSigner,
        head: Callable[[], Head],
        *,
        tiles_dir: Path | None = None,
        interval_s: float = 0.5,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._signer = signer
        self._head = head
        self._interval = interval_s
        self._clock = clock
        self._tiles = TileWriter(tiles_dir, store) if tiles_dir else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpointer", daemon=True)
        latest = store.latest_checkpoint()
        self._latest = latest
        self._latest_map: StatusMap | None = None  # the status map the latest one signs

    @property
    def origin(self) -> str:
        return self._signer.name

    def start(self) -> None:
        self.publish()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.publish()

    def latest(self) -> StoredCheckpoint:
        with self._lock:
            if self._latest is None:
                raise RuntimeError("no checkpoint yet: start() publishes the first")
            return self._latest

    def latest_with_status_map(self) -> tuple[StoredCheckpoint, StatusMap | None]:
        """The latest checkpoint and the consent status map at its size (None until known)."""
        with self._lock:
            if self._latest is None:
                raise RuntimeError("no checkpoint yet: start() publishes the first")
            return self._latest, self._latest_map

    def publish(self) -> StoredCheckpoint:
        """Publish a checkpoint for the current durable head if it moved; return the latest."""
        with self._lock:
            head = self._head()
            size = head.size
            if self._latest is not None and self._latest.size == size:
                self._latest_map = head.status_map  # e.g. the stored one, after a restart
                return self._latest
            previous = self._latest.size if self._latest is not None else 0
            now = int(self._clock())
            # The status-map root as of this size, and the time "valid as of" refers to.
            extensions: tuple[str, ...] = (f"{TIME_EXTENSION} {now}",)
            if head.status_root is not None:
                extensions = (status_extension(head.status_root), *extensions)
            checkpoint = Checkpoint(self.origin, size, head.root, extensions)
            note = sign_checkpoint(checkpoint, [self._signer])
            stored = StoredCheckpoint(size, head.root, note, now)
            if self._tiles is not None:
                self._tiles.write(size, since=previous)
            self._store.save_checkpoint(stored)
            if self._tiles is not None:
                self._tiles.write_checkpoint(note)
            self._latest = stored
            # kept with it: proofs against this checkpoint must not depend on how many
            # commits the sequencer makes before the next one
            self._latest_map = head.status_map
            return stored

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.publish()
            except Exception as exc:  # keep publishing once the database is back
                log.error("checkpoint publication failed", error=str(exc))
