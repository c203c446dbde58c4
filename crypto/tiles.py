"""C2SP tlog-tiles (c2sp.org/tlog-tiles): the log served as static, cacheable files.

A tile at level ``L`` holds up to 256 consecutive node hashes of tree level ``8 * L``; entry
bundles hold the entries themselves. Tiles are built from the ledger's stored nodes
(:func:`build_tile`), and read back through :class:`TileNodeReader`, which makes any directory
or bucket of tiles a :class:`~accord.crypto.merkle.NodeReader`: auditors compute roots and
proofs from tiles with the same code the ledger uses, and check them against a checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accord.crypto.errors import MalformedInput
from accord.crypto.merkle import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    CompactRange,
    NodeID,
    NodeNotFound,
    NodeReader,
    leaf_hash,
    node_hash,
)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF
"""Entries in a bundle carry a 2-byte big-endian length."""
ENTRIES_LEVEL = -1
"""The :attr:`TileID.level` of an entry bundle (``tile/entries/...``)."""

ReadFn = Callable[[str], bytes]
"""Fetches a tile or bundle by its path relative to the log prefix (file, HTTP, bucket)."""

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"[0-9]{3}")


def encode_tile_index(index: int) -> str:
    """``1234067`` -> ``x001/x234/067``: 3-digit groups, all but the last prefixed with ``x``."""
    if not 0 <= index < MAX_TREE_SIZE:
        raise MalformedInput(f"tile index must be in [0, 2**64), got {index}")
    digits = str(index)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _parse_tile_index(parts: Sequence[str], path: str) -> int:
    groups = [p[1:] for p in parts[:-1] if p.startswith("x")] + [parts[-1]]
    if len(groups) != len(parts) or not all(_GROUP.fullmatch(g) for g in groups):
        raise MalformedInput(f"tile path {path!r}: bad index")
    index = int("".join(groups))
    if index >= MAX_TREE_SIZE or encode_tile_index(index) != "/".join(parts):
        raise MalformedInput(f"tile path {path!r}: index is not in canonical form")
    return index


@dataclass(frozen=True, order=True)
class TileID:
    """A hash tile (``level >= 0``) or entry bundle (``level == ENTRIES_LEVEL``) and its width."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not ENTRIES_LEVEL <= self.level <= MAX_TILE_LEVEL:
            raise MalformedInput(f"tile level must be in [0, {MAX_TILE_LEVEL}], got {self.level}")
        if not 0 <= self.index < MAX_TREE_SIZE:
            raise MalformedInput(f"tile index must be in [0, 2**64), got {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise MalformedInput(f"tile width must be in [1, {TILE_WIDTH}], got {self.width}")

    @classmethod
    def entries(cls, index: int, width: int = TILE_WIDTH) -> TileID:
        return cls(ENTRIES_LEVEL, index, width)

    @property
    def is_entries(self) -> bool:
        return self.level == ENTRIES_LEVEL

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
        level = "entries" if self.is_entries else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{level}/{encode_tile_index(self.index)}{suffix}"

    def node_ids(self) -> list[NodeID]:
        """The tree nodes whose hashes this tile holds (leaf hashes for an entry bundle)."""
        level = 0 if self.is_entries else TILE_HEIGHT * self.level
        first = self.index * TILE_WIDTH
        return [NodeID(level, first + i) for i in range(self.width)]

    @classmethod
    def parse(cls, path: str) -> TileID:
        """Parse a canonical tile or entry-bundle path (as a log server receives it)."""
        parts = path.split("/")
        if len(parts) < 3 or parts[0] != "tile":
            raise MalformedInput(f"{path[:80]!r} is not a tile path")
        index_parts, width = parts[2:], TILE_WIDTH
        if len(index_parts) >= 2 and index_parts[-2].endswith(".p"):
            if not _WIDTH.fullmatch(index_parts[-1]) or int(index_parts[-1]) >= TILE_WIDTH:
                raise MalformedInput(f"tile path {path[:80]!r}: bad partial width")
            width = int(index_parts[-1])
            index_parts = [*index_parts[:-2], index_parts[-2][:-2]]
        index = _parse_tile_index(index_parts, path[:80])
        if parts[1] == "entries":
            return cls(ENTRIES_LEVEL, index, width)
        if not _LEVEL.fullmatch(parts[1]) or int(parts[1]) > MAX_TILE_LEVEL:
            raise MalformedInput(f"tile path {path[:80]!r}: bad level")
        return cls(int(parts[1]), index, width)


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    return TileID(level, index, width).path


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    return TileID.entries(index, width).path


def _tiles_at(level: int, node_level: int, size: int, since: int) -> list[TileID]:
    count, old = size >> node_level, since >> node_level
    tiles: list[TileID] = []
    if count == old:  # nothing new at this level: even a partial tile is unchanged
        return tiles
    for index in range(old // TILE_WIDTH, -(-count // TILE_WIDTH)):
        width = min(TILE_WIDTH, count - index * TILE_WIDTH)
        tiles.append(TileID(level, index, width))
    return tiles


def _check_sizes(size: int, since: int) -> None:
    if not 0 <= since <= size < MAX_TREE_SIZE:
        raise MalformedInput(f"need 0 <= since <= size < 2**64, got since={since}, size={size}")


def tiles_for_size(size: int, *, since: int = 0) -> list[TileID]:
    """Every hash tile of the tree of ``size`` leaves, or only those that differ from ``since``.

    With ``since`` set to the previously published size, this is what to (re)write after the
    tree grew. Empty tiles do not exist.
    """
    _check_sizes(size, since)
    tiles: list[TileID] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        tiles.extend(_tiles_at(level, TILE_HEIGHT * level, size, since))
        level += 1
    return tiles


def entry_bundles_for_size(size: int, *, since: int = 0) -> list[TileID]:
    """Every entry bundle of the tree of ``size`` leaves, or those that differ from ``since``."""
    _check_sizes(size, since)
    return [TileID.entries(t.index, t.width) for t in _tiles_at(0, 0, size, since)]


def tile_for_size(level: int, index: int, size: int) -> TileID:
    """Tile ``index`` of ``level`` as it stands in the tree of ``size`` leaves (full or partial)."""
    node_level = 0 if level == ENTRIES_LEVEL else TILE_HEIGHT * level
    available = (size >> node_level) - index * TILE_WIDTH
    if available <= 0:
        raise NodeNotFound(f"tile {level}/{index} does not exist in a tree of size {size}")
    return TileID(level, index, min(TILE_WIDTH, available))


# --- contents ------------------------------------------------------------------------------


def encode_tile(hashes: Sequence[bytes]) -> bytes:
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise MalformedInput(f"a tile holds 1 to {TILE_WIDTH} hashes, got {len(hashes)}")
    for i, digest in enumerate(hashes):
        if len(digest) != HASH_SIZE:
            raise MalformedInput(f"tile hash {i} is {len(digest)} bytes, want {HASH_SIZE}")
    return b"".join(hashes)


def parse_tile(data: bytes, width: int) -> list[bytes]:
    """Split a hash tile into its ``width`` hashes."""
    if len(data) != width * HASH_SIZE:
        raise MalformedInput(
            f"tile of width {width} must be {width * HASH_SIZE} bytes, got {len(data)}"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as big-endian uint16 length-prefixed byte strings."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise MalformedInput(f"a bundle holds 1 to {TILE_WIDTH} entries, got {len(entries)}")
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_BYTES:
            raise MalformedInput(f"entry {i} is {len(entry)} bytes, at most {MAX_ENTRY_BYTES}")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Split an entry bundle; with ``width``, insist on exactly that many entries."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise MalformedInput(f"entry bundle: truncated length at byte {pos}")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + length > len(data):
            raise MalformedInput(
                f"entry bundle: entry {len(entries)} wants {length} bytes, {len(data) - pos} remain"
            )
        entries.append(data[pos : pos + length])
        pos += length
        if len(entries) > TILE_WIDTH:
            raise MalformedInput(f"entry bundle holds more than {TILE_WIDTH} entries")
    if width is not None and len(entries) != width:
        raise MalformedInput(f"entry bundle holds {len(entries)} entries, want {width}")
    return entries


def build_tile(reader: NodeReader, tile: TileID) -> bytes:
    """The bytes of a hash tile, from the ledger's stored nodes."""
    if tile.is_entries:
        raise MalformedInput("entry bundles are built from entries, not stored hashes")
    return encode_tile(reader.get_nodes(tile.node_ids()))


# --- reading a tiled log -------------------------------------------------------------------


class TileNodeReader:
    """A :class:`NodeReader` over the tiles of a log at tree size ``size``.

    Any stored node of that tree lies in exactly one tile; nodes between tile levels are
    rehashed from the tile's bottom row. Tiles are fetched once and kept. Nothing read here is
    trusted: compare what it yields against a verified checkpoint.
    """

    def __init__(self, read: ReadFn, size: int) -> None:
        _check_sizes(size, 0)
        self._read = read
        self._size = size
        self._tiles: dict[TileID, list[bytes]] = {}

    def tile(self, level: int, index: int) -> list[bytes]:
        """The hashes of tile ``index`` at ``level``, as it stands at this tree size."""
        tile = tile_for_size(level, index, self._size)
        if tile not in self._tiles:
            self._tiles[tile] = parse_tile(self._read(tile.path), tile.width)
        return self._tiles[tile]

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        return [self._node(node_id) for node_id in ids]

    def _node(self, node: NodeID) -> bytes:
        if node.level < 0 or node.index < 0 or node.coverage()[1] > self._size:
            raise NodeNotFound(f"node {node} is not complete at tree size {self._size}")
        level, rel = divmod(node.level, TILE_HEIGHT)
        first = node.index << rel  # leftmost descendant on the tile's bottom row
        row = self.tile(level, first // TILE_WIDTH)
        start = first % TILE_WIDTH
        hashes = row[start : start + (1 << rel)]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]


def read_leaf_hashes(read: ReadFn, size: int) -> list[bytes]:
    """All leaf hashes of the tree of ``size`` leaves, from its level-0 tiles."""
    _check_sizes(size, 0)
    hashes: list[bytes] = []
    for tile in _tiles_at(0, 0, size, 0):
        hashes.extend(parse_tile(read(tile.path), tile.width))
    return hashes


def read_entries(read: ReadFn, size: int) -> list[bytes]:
    """All entries of the tree of ``size`` leaves, from its entry bundles."""
    entries: list[bytes] = []
    for bundle in entry_bundles_for_size(size):
        entries.extend(parse_entry_bundle(read(bundle.path), bundle.width))
    return entries


def entry_leaf_hashes(entries: Sequence[bytes]) -> list[bytes]:
    return [leaf_hash(entry) for entry in entries]


def root_from_tiles(read: ReadFn, size: int) -> bytes:
    """The root of the tree of ``size`` leaves, reading only the O(log n) tiles it needs."""
    return CompactRange.from_reader(TileNodeReader(read, size), size).root()
