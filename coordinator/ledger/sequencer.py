"""Group commit: one writer thread assigns indexes and commits whatever has queued up.

Appends from many clients wait on futures while the writer commits the previous batch; the
next batch then carries everything that arrived meanwhile, so one fsync acknowledges many
appends and throughput grows with the number of writers instead of collapsing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import structlog

from accord.clock import Clock, system_clock
from accord.coordinator.ledger.consent_index import ConsentIndex
from accord.coordinator.ledger.store import SqlLedgerStore, StoredEntry
from accord.crypto.merkle import CompactRange, NodeID, leaf_hash
from accord.crypto.statusmap import StatusMap
from accord.errors import AccordError, Unavailable

log = structlog.get_logger(__name__)

MAX_BATCH_ENTRIES = 4096


@dataclass(frozen=True)
class Appended:
    index: int
    leaf_hash: bytes


@dataclass(frozen=True)
class Head:
    """The durable state: everything below ``size`` is committed; ``status_root`` matches it."""

    size: int
    root: bytes
    status_root: bytes | None
    # the status map at ``size`` (immutable), so a checkpoint of this head can always be
    # proven against, however many commits follow before the next one
    status_map: StatusMap | None = field(default=None, compare=False, repr=False)


@dataclass
class _Request:
    entries: Sequence[bytes]
    appended_by: str
    future: Future[list[Appended]]


_STOP = object()
REPLAY_PAGE = 5000


def _all_entries(store: SqlLedgerStore, size: int) -> Iterator[tuple[int, bytes, str]]:
    for start in range(0, size, REPLAY_PAGE):
        for entry in store.get_entries(start, REPLAY_PAGE):
            yield entry.index, entry.data, entry.appended_by


class Sequencer:
    """Owns the log's right edge (a compact range); the only writer of entries and nodes."""

    def __init__(
        self,
        store: SqlLedgerStore,
        *,
        clock: Clock = system_clock,
        index: ConsentIndex | None = None,
        on_commit: Callable[[Head, list[tuple[int, bytes, str]]], None] = lambda head, new: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._index = index
        self._on_commit = on_commit
        size = store.size()
        self._range = CompactRange.from_reader(store, size) if size else CompactRange()
        if index is not None:
            index.replay(_all_entries(store, size))
        self._queue: queue.Queue[_Request | object] = queue.Queue()
        self._head_lock = threading.Lock()
        self._head = self._head_at(self._range.size)
        self._thread = threading.Thread(target=self._run, name="ledger-sequencer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _head_at(self, size: int) -> Head:
        status = self._index.map() if self._index is not None else None
        return Head(size, self._range.root(), status.root if status else None, status)

    def head(self) -> Head:
        with self._head_lock:
            return self._head

    def submit(self, entries: Sequence[bytes], appended_by: str) -> Future[list[Appended]]:
        future: Future[list[Appended]] = Future()
        self._queue.put(_Request(entries, appended_by, future))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if not isinstance(first, _Request):
                return
            batch = [first]
            count = len(first.entries)
            stop_after = False
            while count < MAX_BATCH_ENTRIES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, _Request):
                    stop_after = True
                    break
                batch.append(item)
                count += len(item.entries)
            self._commit(batch)
            if stop_after:
                return

    def _resync(self) -> None:
        """After a failed commit, trust only what the database holds (it may have committed)."""
        try:
            size = self._store.size()
            self._range = CompactRange.from_reader(self._store, size) if size else CompactRange()
            if self._index is not None:
                self._index.reset()
                self._index.replay(_all_entries(self._store, size))
            with self._head_lock:
                self._head = self._head_at(size)
        except Exception as exc:
            log.error("ledger resync failed; will retry on the next append", error=str(exc))

    def _commit(self, batch: list[_Request]) -> None:
        draft = self._range.copy()
        staged = self._index.draft() if self._index is not None else None
        now = int(self._clock())
        rows: list[StoredEntry] = []
        nodes: list[tuple[NodeID, bytes]] = []
        results: list[list[Appended]] = []
        accepted: list[_Request] = []
        for request in batch:
            if self._index is not None and staged is not None:
                try:
                    self._index.stage(staged, draft.size, request.entries, request.appended_by)
                except AccordError as exc:  # this request only: the others still commit
                    request.future.set_exception(exc)
                    continue
            accepted.append(request)
            appended = []
            for data in request.entries:
                leaf = leaf_hash(data)
                index = draft.size
                nodes.extend(draft.append(leaf))
                rows.append(StoredEntry(index, data, leaf, now, request.appended_by))
                appended.append(Appended(index, leaf))
            results.append(appended)
        if not rows:
            return
        try:
            self._store.append(rows, nodes)
        except Exception as exc:  # the database refused: nothing was acknowledged
            log.error("ledger commit failed", entries=len(rows), error=str(exc))
            for request in accepted:
                request.future.set_exception(
                    Unavailable("the ledger could not commit this append; retry")
                )
            self._resync()
            return
        self._range = draft
        status = (
            self._index.commit(staged, draft.size)
            if self._index is not None and staged is not None
            else None
        )
        head = Head(draft.size, draft.root(), status.root if status else None, status)
        with self._head_lock:
            self._head = head
        self._on_commit(head, [(r.index, r.data, r.appended_by) for r in rows])
        for request, appended in zip(accepted, results, strict=True):
            request.future.set_result(appended)
