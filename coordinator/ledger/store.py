"""Ledger storage over SQLAlchemy (SQLite or PostgreSQL): entries, subtree hashes, checkpoints.

The tables are declared in :mod:`accord.coordinator.models` (and migrated by Alembic); this
module reads and writes them with plain parameterised SQL, which keeps the hot path free of ORM
work and reads the same on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from accord.crypto.merkle import NodeID, NodeNotFound

NODE_CACHE_SIZE = 500_000  # about 60 MB at most

_INSERT_ENTRY = text(
    "INSERT INTO ledger_entry (idx, data, leaf_hash, appended_at, appended_by) "
    "VALUES (:idx, :data, :leaf_hash, :appended_at, :appended_by)"
)
_INSERT_NODE = text("INSERT INTO ledger_node (level, idx, hash) VALUES (:level, :idx, :hash)")
_SIZE = text("SELECT MAX(idx) FROM ledger_entry")
_ENTRIES = text(
    "SELECT idx, data, leaf_hash, appended_at, appended_by FROM ledger_entry "
    "WHERE idx >= :start AND idx < :stop ORDER BY idx"
)
_INSERT_CHECKPOINT = text(
    "INSERT INTO ledger_checkpoint (size, root, note, published_at) "
    "VALUES (:size, :root, :note, :published_at)"
)
_LATEST_CHECKPOINT = text(
    "SELECT size, root, note, published_at FROM ledger_checkpoint ORDER BY size DESC LIMIT 1"
)
_CHECKPOINT_AT = text(
    "SELECT size, root, note, published_at FROM ledger_checkpoint WHERE size = :size"
)


@dataclass(frozen=True)
class StoredEntry:
    index: int
    data: bytes
    leaf_hash: bytes
    appended_at: int
    appended_by: str


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    published_at: int


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))


class SqlLedgerStore:
    """Implements :class:`accord.crypto.merkle.NodeReader` for proofs, plus entry storage."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[tuple[int, int], bytes] = {}

    def size(self) -> int:
        with self.engine.connect() as conn:
            top = conn.execute(_SIZE).scalar()
        return 0 if top is None else int(top) + 1

    def append(self, entries: Sequence[StoredEntry], nodes: Sequence[tuple[NodeID, bytes]]) -> None:
        """Write entries and the subtree hashes they complete in one durable transaction."""
        with self.engine.begin() as conn:
            conn.execute(
                _INSERT_ENTRY,
                [
                    {
                        "idx": e.index,
                        "data": e.data,
                        "leaf_hash": e.leaf_hash,
                        "appended_at": e.appended_at,
                        "appended_by": e.appended_by,
                    }
                    for e in entries
                ],
            )
            conn.execute(
                _INSERT_NODE, [{"level": n.level, "idx": n.index, "hash": h} for n, h in nodes]
            )

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        keys = [(n.level, n.index) for n in ids]
        wanted = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if wanted:
            # One round trip, each term an index lookup on the (level, idx) primary key.
            terms = " OR ".join(f"(level = :l{i} AND idx = :i{i})" for i in range(len(wanted)))
            params: dict[str, int] = {}
            for i, (level, index) in enumerate(wanted):
                params[f"l{i}"], params[f"i{i}"] = level, index
            with self.engine.connect() as conn:
                rows = conn.execute(
                    text(f"SELECT level, idx, hash FROM ledger_node WHERE {terms}"),  # noqa: S608
                    params,
                ).all()
            for level, index, digest in rows:
                self._remember((int(level), int(index)), bytes(digest))
        missing = [k for k in keys if k not in self._cache]
        if missing:
            raise NodeNotFound(f"the ledger has no stored subtree hash for {missing[:3]}")
        return [self._cache[k] for k in keys]

    def _remember(self, key: tuple[int, int], digest: bytes) -> None:
        # Subtree hashes never change once written (append-only), so caching them is safe.
        if len(self._cache) >= NODE_CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = digest

    def get_entries(self, start: int, count: int) -> list[StoredEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(_ENTRIES, {"start": start, "stop": start + count}).all()
        return [
            StoredEntry(int(r[0]), bytes(r[1]), bytes(r[2]), int(r[3]), str(r[4])) for r in rows
        ]

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _INSERT_CHECKPOINT,
                {
                    "size": checkpoint.size,
                    "root": checkpoint.root,
                    "note": checkpoint.note,
                    "published_at": checkpoint.published_at,
                },
            )

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(_LATEST_CHECKPOINT).first()
        return None if row is None else _checkpoint(row)

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(_CHECKPOINT_AT, {"size": size}).first()
        return None if row is None else _checkpoint(row)
