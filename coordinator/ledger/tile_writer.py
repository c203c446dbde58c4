"""Writes the log in the C2SP tlog-tiles layout, so any tlog client can read it from files."""

from __future__ import annotations

import os
from pathlib import Path

from accord.coordinator.ledger.store import SqlLedgerStore
from accord.crypto.tiles import (
    TILE_WIDTH,
    build_tile,
    encode_entry_bundle,
    entry_bundles_for_size,
    tiles_for_size,
)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class TileWriter:
    def __init__(self, directory: Path, store: SqlLedgerStore) -> None:
        self.directory = directory
        self._store = store

    def write(self, size: int, *, since: int) -> None:
        """Write every hash tile and entry bundle that changed between ``since`` and ``size``."""
        if size == 0:
            return
        for tile in tiles_for_size(size, since=since):
            _atomic_write(self.directory / tile.path, build_tile(self._store, tile))
        for bundle in entry_bundles_for_size(size, since=since):
            start = bundle.index * TILE_WIDTH
            entries = self._store.get_entries(start, bundle.width)
            _atomic_write(
                self.directory / bundle.path, encode_entry_bundle([e.data for e in entries])
            )

    def write_checkpoint(self, note: str) -> None:
        _atomic_write(self.directory / "checkpoint", note.encode())
