"""Row keys: a node's opaque 16-byte name for one aligned customer in one alignment run."""

from __future__ import annotations

from accord.errors import InvalidInput

ROW_KEY_BYTES = 16


def split_keys(blob: bytes) -> list[bytes]:
    """Concatenated row keys, as they travel, back into a list."""
    if len(blob) % ROW_KEY_BYTES:
        raise InvalidInput(f"row keys come in {ROW_KEY_BYTES}-byte units")
    return [blob[i : i + ROW_KEY_BYTES] for i in range(0, len(blob), ROW_KEY_BYTES)]
