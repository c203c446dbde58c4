"""A real tessera transparency log: signed checkpoints, hash tiles and entry bundles (C2SP)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from accord.crypto import merkle, note, tiles
from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import CompactRange, MemoryNodeStore
from accord.crypto.note import Checkpoint
from accord.crypto.tiles import TileID, TileNodeReader

VERIFIER_KEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
ORIGIN = "example.com/log/testdata"
ENTRIES = [b"one", b"two", b"three", b"four", b"five", b"six", b"seven", b"eit", b"nain"]
ENTRIES += [b"ten", b"ileven", b"twelf", b"threeten", b"fourten", b"fivten"]
SIZES = range(16)

# See test_rfc9162_vectors.py: the lookup mirrors tests/conftest.py; fixtures skip or fail.
_SHARED = Path(
    os.environ.get("ACCORD_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
_LOG = _SHARED / "vectors" / "tessera-log"
CHECKPOINT_FILES = sorted(p.name for p in _LOG.glob("checkpoint*"))


@pytest.fixture
def log_dir(vectors_dir: Path) -> Path:
    return vectors_dir / "tessera-log"


@pytest.fixture
def verifier() -> NoteVerifier:
    return NoteVerifier.parse(VERIFIER_KEY)


def _reader(log_dir: Path) -> tiles.ReadFn:
    def read(path: str) -> bytes:
        TileID.parse(path)  # only canonical tile paths, so nothing escapes the directory
        return (log_dir / path).read_bytes()

    return read


def _checkpoint(log_dir: Path, verifier: NoteVerifier, size: int) -> Checkpoint:
    data = (log_dir / f"checkpoint.{size}").read_bytes()
    return note.verify_checkpoint(data, [verifier], origin=ORIGIN)


def test_every_checkpoint_is_present(log_dir: Path) -> None:
    assert {f"checkpoint.{n}" for n in SIZES} | {"checkpoint"} == set(CHECKPOINT_FILES)


@pytest.mark.parametrize("size", SIZES)
def test_checkpoint_root_is_recomputed_from_entries_and_tiles(
    log_dir: Path, verifier: NoteVerifier, size: int
) -> None:
    checkpoint = _checkpoint(log_dir, verifier, size)
    assert checkpoint.size == size
    assert checkpoint.origin == ORIGIN
    assert checkpoint.extensions == ()
    read = _reader(log_dir)

    entries = tiles.read_entries(read, size)
    assert entries == ENTRIES[:size]
    from_entries = merkle.reference_root(tiles.entry_leaf_hashes(entries))
    leaf_hashes = tiles.read_leaf_hashes(read, size)
    assert leaf_hashes == tiles.entry_leaf_hashes(entries)
    assert from_entries == checkpoint.root_hash
    assert merkle.reference_root(leaf_hashes) == checkpoint.root_hash
    assert tiles.root_from_tiles(read, size) == checkpoint.root_hash


def test_latest_checkpoint_is_the_largest(log_dir: Path, verifier: NoteVerifier) -> None:
    latest = note.verify_checkpoint(
        (log_dir / "checkpoint").read_bytes(), [verifier], origin=ORIGIN
    )
    assert latest == _checkpoint(log_dir, verifier, 15)


def test_our_tiles_are_byte_identical(log_dir: Path) -> None:
    """Tiles built from our own stored nodes equal tessera's files."""
    store = MemoryNodeStore()
    tree = CompactRange()
    for size, entry in enumerate(ENTRIES, start=1):
        store.put(tree.append(merkle.leaf_hash(entry)))
        for tile in tiles.tiles_for_size(size, since=size - 1):
            assert tiles.build_tile(store, tile) == (log_dir / tile.path).read_bytes()
        for bundle in tiles.entry_bundles_for_size(size, since=size - 1):
            expected = (log_dir / bundle.path).read_bytes()
            assert tiles.encode_entry_bundle(ENTRIES[:size]) == expected


def test_proofs_from_tiles_verify_against_checkpoints(
    log_dir: Path, verifier: NoteVerifier
) -> None:
    read = _reader(log_dir)
    checkpoints = {size: _checkpoint(log_dir, verifier, size) for size in SIZES}
    for size2 in range(1, 16):
        reader = TileNodeReader(read, size2)
        root2 = checkpoints[size2].root_hash
        for index in range(size2):
            proof = merkle.inclusion_proof(reader, index, size2)
            merkle.verify_inclusion(merkle.leaf_hash(ENTRIES[index]), index, size2, proof, root2)
        for size1 in range(1, size2 + 1):
            proof = merkle.consistency_proof(reader, size1, size2)
            merkle.verify_consistency(size1, size2, checkpoints[size1].root_hash, root2, proof)


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_every_single_bit_flip_is_rejected(
    log_dir: Path, verifier: NoteVerifier, name: str
) -> None:
    data = (log_dir / name).read_bytes()
    note.verify_checkpoint(data, [verifier], origin=ORIGIN)
    for pos in range(len(data)):
        for bit in range(8):
            changed = bytearray(data)
            changed[pos] ^= 1 << bit
            with pytest.raises((MalformedInput, VerificationError)):
                note.verify_checkpoint(bytes(changed), [verifier], origin=ORIGIN)


def test_wrong_key_or_origin_is_rejected(log_dir: Path, verifier: NoteVerifier) -> None:
    data = (log_dir / "checkpoint.3").read_bytes()
    with pytest.raises(VerificationError):
        note.verify_checkpoint(data, [verifier], origin="example.com/other")
    stranger = NoteVerifier(ORIGIN, bytes(32))
    with pytest.raises(VerificationError):
        note.verify_checkpoint(data, [stranger], origin=ORIGIN)
