"""accord.crypto.tiles: tile paths, contents, and reading a tiled log back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.crypto import merkle, tiles
from accord.crypto.errors import MalformedInput
from accord.crypto.merkle import CompactRange, MemoryNodeStore, NodeID, NodeNotFound
from accord.crypto.tiles import ENTRIES_LEVEL, TILE_WIDTH, TileID, TileNodeReader

# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "encoded"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_encode_tile_index(index: int, encoded: str) -> None:
    assert tiles.encode_tile_index(index) == encoded


def test_paths() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(2, 0, 1) == "tile/2/000.p/1"
    assert tiles.entries_path(3, 17) == "tile/entries/003.p/17"
    assert TileID.entries(5).path == "tile/entries/005"


@given(
    level=st.integers(ENTRIES_LEVEL, 63),
    index=st.integers(0, 2**64 - 1),
    width=st.integers(1, TILE_WIDTH),
)
def test_tile_paths_round_trip(level: int, index: int, width: int) -> None:
    tile = TileID(level, index, width)
    assert TileID.parse(tile.path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile",
        "tile/0",
        "tiles/0/000",
        "tile/0/1",
        "tile/0/0000",
        "tile/0/x000/001",  # leading zero group
        "tile/0/x001",  # last group prefixed
        "tile/0/001/002",  # inner group not prefixed
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/data/000",
        "tile/0/000.p/0",
        "tile/0/000.p/01",
        "tile/0/000.p/256",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/entries/000.p/300",
        "tile/0/x018/x446/x744/x073/x709/x551/616",  # 2**64
        "/tile/0/000",
        "tile/0/000/",
    ],
)
def test_bad_tile_paths(path: str) -> None:
    with pytest.raises(MalformedInput):
        TileID.parse(path)


@pytest.mark.parametrize(
    ("level", "index", "width"), [(-2, 0, 1), (64, 0, 1), (0, -1, 1), (0, 0, 0), (0, 0, 257)]
)
def test_tile_id_is_validated(level: int, index: int, width: int) -> None:
    with pytest.raises(MalformedInput):
        TileID(level, index, width)


# --- which tiles exist ---------------------------------------------------------------------


def test_tiles_for_size_follows_the_spec_examples() -> None:
    assert tiles.tiles_for_size(0) == []
    assert tiles.tiles_for_size(256) == [TileID(0, 0), TileID(1, 0, 1)]
    got = tiles.tiles_for_size(70_000)
    level0 = [t for t in got if t.level == 0]
    assert len(level0) == 274
    assert all(not t.is_partial for t in level0[:273])
    assert level0[-1] == TileID(0, 273, 112)
    assert [t for t in got if t.level > 0] == [TileID(1, 0), TileID(1, 1, 17), TileID(2, 0, 1)]
    bundles = tiles.entry_bundles_for_size(70_000)
    assert len(bundles) == 274
    assert bundles[-1] == TileID.entries(273, 112)


@given(size1=st.integers(0, 140_000), grow=st.integers(0, 70_000))
def test_tiles_since_are_exactly_the_changed_ones(size1: int, grow: int) -> None:
    size2 = size1 + grow
    before = set(tiles.tiles_for_size(size1))
    after = tiles.tiles_for_size(size2)
    assert tiles.tiles_for_size(size2, since=size1) == [t for t in after if t not in before]
    old_bundles = set(tiles.entry_bundles_for_size(size1))
    new_bundles = tiles.entry_bundles_for_size(size2)
    assert tiles.entry_bundles_for_size(size2, since=size1) == [
        b for b in new_bundles if b not in old_bundles
    ]


def test_tiles_since_rejects_shrinking() -> None:
    with pytest.raises(MalformedInput):
        tiles.tiles_for_size(5, since=6)


def test_tile_for_size() -> None:
    assert tiles.tile_for_size(0, 0, 300) == TileID(0, 0)
    assert tiles.tile_for_size(0, 1, 300) == TileID(0, 1, 44)
    assert tiles.tile_for_size(1, 0, 300) == TileID(1, 0, 1)
    with pytest.raises(NodeNotFound):
        tiles.tile_for_size(0, 2, 300)


# --- contents ------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=TILE_WIDTH))
def test_entry_bundles_round_trip(entries: list[bytes]) -> None:
    data = tiles.encode_entry_bundle(entries)
    assert tiles.parse_entry_bundle(data, len(entries)) == entries


@given(st.binary(max_size=600))
def test_random_bundles_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        entries = tiles.parse_entry_bundle(data)
    except MalformedInput:
        return
    if not entries:
        assert data == b""
        return
    assert tiles.encode_entry_bundle(entries) == data


def test_entry_bundle_errors() -> None:
    with pytest.raises(MalformedInput, match="truncated"):
        tiles.parse_entry_bundle(b"\x00\x01a\x00")
    with pytest.raises(MalformedInput, match="wants 5 bytes"):
        tiles.parse_entry_bundle(b"\x00\x05abc")
    with pytest.raises(MalformedInput, match="want 2"):
        tiles.parse_entry_bundle(b"\x00\x01a", 2)
    with pytest.raises(MalformedInput):
        tiles.parse_entry_bundle(b"\x00\x00" * 257)
    with pytest.raises(MalformedInput):
        tiles.encode_entry_bundle([b"x" * 65_536])
    with pytest.raises(MalformedInput):
        tiles.encode_entry_bundle([])
    assert tiles.encode_entry_bundle([b"x" * 65_535])[:2] == b"\xff\xff"


def test_tile_contents_errors() -> None:
    with pytest.raises(MalformedInput):
        tiles.parse_tile(b"\x00" * 63, 2)
    with pytest.raises(MalformedInput):
        tiles.encode_tile([b"\x00" * 31])
    with pytest.raises(MalformedInput):
        tiles.encode_tile([])
    with pytest.raises(MalformedInput):
        tiles.build_tile(MemoryNodeStore(), TileID.entries(0, 1))


# --- a log large enough for three tile levels ----------------------------------------------

SIZE = TILE_WIDTH * TILE_WIDTH + TILE_WIDTH + 3  # partial tiles on levels 0, 1 and 2
CHECKPOINT_SIZES = (1, 255, 256, 257, 4_000, 65_536, SIZE)


class _Log:
    """A log built the way the ledger builds it: entries, stored nodes, published tiles."""

    def __init__(self) -> None:
        self.entries = [b"entry-%d" % i for i in range(SIZE)]
        self.store = MemoryNodeStore()
        self.roots: dict[int, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.reads: list[str] = []
        tree = CompactRange()
        published = 0
        for entry in self.entries:
            self.store.put(tree.append(merkle.leaf_hash(entry)))
            if tree.size in CHECKPOINT_SIZES:
                self.roots[tree.size] = tree.root()
                self._publish(published, tree.size)
                published = tree.size

    def _publish(self, since: int, size: int) -> None:
        for tile in tiles.tiles_for_size(size, since=since):
            self.files[tile.path] = tiles.build_tile(self.store, tile)
        for bundle in tiles.entry_bundles_for_size(size, since=since):
            first = bundle.index * TILE_WIDTH
            chunk = self.entries[first : first + bundle.width]
            self.files[bundle.path] = tiles.encode_entry_bundle(chunk)

    def read(self, path: str) -> bytes:
        self.reads.append(path)
        return self.files[path]


@pytest.fixture(scope="module")
def log() -> _Log:
    return _Log()


@pytest.mark.parametrize("size", CHECKPOINT_SIZES)
def test_root_from_tiles_reads_few_tiles(log: _Log, size: int) -> None:
    log.reads.clear()
    assert tiles.root_from_tiles(log.read, size) == log.roots[size]
    assert len(log.reads) <= 2 * 3  # at most two tiles per level


@pytest.mark.parametrize("size", [1, 257, 4_000])
def test_leaf_hashes_and_entries_from_tiles(log: _Log, size: int) -> None:
    leaves = tiles.read_leaf_hashes(log.read, size)
    assert leaves == tiles.entry_leaf_hashes(tiles.read_entries(log.read, size))
    assert merkle.reference_root(leaves) == log.roots[size]


def test_proofs_served_from_tiles_verify(log: _Log) -> None:
    reader = TileNodeReader(log.read, SIZE)
    root = log.roots[SIZE]
    for index in (0, 1, 255, 256, 65_535, 65_536, 65_791, SIZE - 1):
        proof = merkle.inclusion_proof(reader, index, SIZE)
        assert proof == merkle.inclusion_proof(log.store, index, SIZE)
        merkle.verify_inclusion(merkle.leaf_hash(log.entries[index]), index, SIZE, proof, root)
    for size1 in CHECKPOINT_SIZES:
        proof = merkle.consistency_proof(reader, size1, SIZE)
        merkle.verify_consistency(size1, SIZE, log.roots[size1], root, proof)


def test_tile_node_reader_refuses_incomplete_nodes(log: _Log) -> None:
    reader = TileNodeReader(log.read, 257)
    assert reader.get_nodes([NodeID(8, 0)]) == log.store.get_nodes([NodeID(8, 0)])
    with pytest.raises(NodeNotFound):
        reader.get_nodes([NodeID(0, 257)])
    with pytest.raises(NodeNotFound):
        reader.get_nodes([NodeID(1, 128)])


def test_tile_node_reader_checks_tile_length() -> None:
    reader = TileNodeReader(lambda path: b"\x00" * 33, 3)
    with pytest.raises(MalformedInput, match="tile of width 3"):
        reader.get_nodes([NodeID(0, 0)])
