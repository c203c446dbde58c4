"""accord.crypto.merkle: hashing, compact ranges, proof planning from storage, verification."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.crypto import merkle
from accord.crypto.errors import CryptoError, MalformedInput, VerificationError
from accord.crypto.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ConsistencyProof,
    InclusionProof,
    MemoryNodeStore,
    NodeID,
    NodeNotFound,
)
from accord.errors import NotFound

MAX_SIZE = 300
REJECTED = (VerificationError, MalformedInput)


def _leaf(i: int) -> bytes:
    return merkle.leaf_hash(b"entry %d" % i)


LEAVES = [_leaf(i) for i in range(MAX_SIZE)]


@cache
def _root(size: int) -> bytes:
    return merkle.reference_root(LEAVES[:size])


def _store(size: int) -> MemoryNodeStore:
    store = MemoryNodeStore()
    tree = CompactRange()
    for leaf in LEAVES[:size]:
        store.put(tree.append(leaf))
    return store


FULL_STORE = _store(MAX_SIZE)


# RFC 9162 section 2.1.3.1 (PATH) and 2.1.4.1 (SUBPROOF), written from the text, to check that
# the storage-based proofs are exactly the proofs the RFC defines.
def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _rfc_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_rfc_path(m, leaves[:k]), merkle.reference_root(leaves[k:])]
    return [*_rfc_path(m - k, leaves[k:]), merkle.reference_root(leaves[:k])]


def _rfc_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [merkle.reference_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_rfc_subproof(m, leaves[:k], whole), merkle.reference_root(leaves[k:])]
    return [*_rfc_subproof(m - k, leaves[k:], False), merkle.reference_root(leaves[:k])]


def _flip(proof: Sequence[bytes], item: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[item])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:item], bytes(changed), *proof[item + 1 :]]


# --- hashing -------------------------------------------------------------------------------


def test_hashes_are_rfc6962() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        merkle.node_hash(b"a" * 32, b"b" * 32)
        == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert merkle.reference_root([]) == EMPTY_ROOT
    assert merkle.reference_root([LEAVES[0]]) == LEAVES[0]
    three = merkle.node_hash(merkle.node_hash(LEAVES[0], LEAVES[1]), LEAVES[2])
    assert merkle.reference_root(LEAVES[:3]) == three


def test_node_id_navigation() -> None:
    node = NodeID(2, 5)
    assert node.parent() == NodeID(3, 2)
    assert node.sibling() == NodeID(2, 4)
    assert node.coverage() == (20, 24)


@pytest.mark.parametrize(
    ("begin", "end", "expected"),
    [
        (0, 0, []),
        (0, 1, [(0, 0)]),
        (0, 7, [(2, 0), (1, 2), (0, 6)]),
        (3, 8, [(0, 3), (2, 1)]),
        (5, 13, [(0, 5), (1, 3), (2, 2), (0, 12)]),
    ],
)
def test_range_nodes(begin: int, end: int, expected: list[tuple[int, int]]) -> None:
    assert merkle.range_nodes(begin, end) == [NodeID(*e) for e in expected]


# --- compact range -------------------------------------------------------------------------


def test_compact_range_root_matches_reference_for_every_size() -> None:
    tree = CompactRange()
    assert tree.root() == EMPTY_ROOT
    for size in range(1, MAX_SIZE + 1):
        tree.append(LEAVES[size - 1])
        assert tree.size == size
        assert len(tree.hashes) == size.bit_count()
        assert tree.root() == _root(size)


def test_append_reports_every_completed_node() -> None:
    tree = CompactRange()
    reported = [tree.append(leaf) for leaf in LEAVES[:4]]
    ids = [[node for node, _ in nodes] for nodes in reported]
    assert ids == [
        [NodeID(0, 0)],
        [NodeID(0, 1), NodeID(1, 0)],
        [NodeID(0, 2)],
        [NodeID(0, 3), NodeID(1, 1), NodeID(2, 0)],
    ]
    assert reported[3][-1][1] == _root(4)


def test_store_holds_exactly_the_complete_subtrees() -> None:
    size = 13
    store = _store(size)
    # One node per complete subtree: size + size//2 + size//4 + ...
    assert len(store) == sum(size >> level for level in range(size.bit_length()))


def test_compact_range_from_reader_continues_the_tree() -> None:
    for size in (0, 1, 5, 64, 255, MAX_SIZE - 1):
        rebuilt = CompactRange.from_reader(FULL_STORE, size)
        assert rebuilt.root() == _root(size)
        live = CompactRange()
        for leaf in LEAVES[:size]:
            live.append(leaf)
        assert rebuilt == live
        rebuilt.append(LEAVES[size])
        assert rebuilt.root() == _root(size + 1)
    assert merkle.root_at(FULL_STORE, 77) == _root(77)


def test_compact_range_rejects_bad_state() -> None:
    with pytest.raises(MalformedInput):
        CompactRange(3, [LEAVES[0]])  # size 3 needs two hashes
    with pytest.raises(MalformedInput):
        CompactRange(1, [b"short"])
    with pytest.raises(MalformedInput):
        CompactRange(-1)
    with pytest.raises(MalformedInput):
        CompactRange().append(b"\x00" * 31)


def test_missing_node_is_not_found() -> None:
    with pytest.raises(NodeNotFound) as info:
        merkle.inclusion_proof(_store(4), 0, 8)
    assert isinstance(info.value, NotFound)
    assert isinstance(info.value, CryptoError)


# --- proof generation ----------------------------------------------------------------------


def test_proofs_equal_the_rfc_definitions() -> None:
    """Every proof for every tree up to 64 leaves, from storage, is the RFC's proof."""
    for size2 in range(1, 65):
        store = _store(size2)
        for index in range(size2):
            expected = _rfc_path(index, LEAVES[:size2])
            assert merkle.inclusion_proof(store, index, size2) == expected
        for size1 in range(1, size2 + 1):
            expected = _rfc_subproof(size1, LEAVES[:size2], True)
            assert merkle.consistency_proof(store, size1, size2) == expected


def test_ephemeral_node_is_never_stored() -> None:
    for size in range(1, 70):
        for plan in [merkle.inclusion_nodes(i, size) for i in range(size)] + [
            merkle.consistency_nodes(s, size) for s in range(1, size + 1)
        ]:
            for node in plan.ids:
                assert node.coverage()[1] <= size  # complete, hence stored
            if plan.ephemeral is not None:
                assert plan.ephemeral.coverage()[1] > size
                assert plan.ephem_end - plan.ephem_begin >= 1


class _SyntheticReader:
    """Pretends to store every node of a huge tree; counts what is read."""

    def __init__(self) -> None:
        self.reads = 0

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        self.reads += len(ids)
        return [hashlib.sha256(b"%d/%d" % (n.level, n.index)).digest() for n in ids]


@pytest.mark.parametrize("size", [2**20, 2**40 + 12345, 2**63 - 1, 2**64 - 1])
def test_proof_cost_grows_with_log_n(size: int) -> None:
    bound = 2 * math.ceil(math.log2(size)) + 2
    for index in (0, 1, size // 3, size - 2, size - 1):
        reader = _SyntheticReader()
        proof = merkle.inclusion_proof(reader, index, size)
        assert reader.reads <= bound
        assert len(proof) <= math.ceil(math.log2(size))
    for size1 in (1, 3, size // 2 + 1, size - 1):
        reader = _SyntheticReader()
        merkle.consistency_proof(reader, size1, size)
        assert reader.reads <= bound
    reader = _SyntheticReader()
    CompactRange.from_reader(reader, size)
    assert reader.reads == size.bit_count()


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (-1, 4), (0, 2**64)])
def test_inclusion_plan_rejects_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(MalformedInput):
        merkle.inclusion_nodes(index, size)


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 5), (6, 5), (-1, 3)])
def test_consistency_plan_rejects_bad_arguments(size1: int, size2: int) -> None:
    with pytest.raises(MalformedInput):
        merkle.consistency_nodes(size1, size2)


def test_rehash_checks_what_storage_returned() -> None:
    plan = merkle.inclusion_nodes(0, 5)
    with pytest.raises(MalformedInput):
        plan.rehash([LEAVES[0]] * (len(plan.ids) - 1))
    with pytest.raises(MalformedInput):
        plan.rehash([b"\x00" * 31] * len(plan.ids))


# --- verification, properties --------------------------------------------------------------


@settings(max_examples=200)
@given(data=st.data(), size=st.integers(1, MAX_SIZE), own_store=st.booleans())
def test_inclusion_proofs_verify_and_bit_flips_fail(
    data: st.DataObject, size: int, own_store: bool
) -> None:
    store = _store(size) if own_store else FULL_STORE
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(store, index, size)
    merkle.verify_inclusion(LEAVES[index], index, size, proof, _root(size))
    assert merkle.root_from_inclusion_proof(LEAVES[index], index, size, proof) == _root(size)
    if proof:
        item = data.draw(st.integers(0, len(proof) - 1), label="item")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(
                LEAVES[index], index, size, _flip(proof, item, bit), _root(size)
            )
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(_flip([LEAVES[index]], 0, 7)[0], index, size, proof, _root(size))
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(LEAVES[index], index, size, proof, _flip([_root(size)], 0, 0)[0])


@settings(max_examples=200)
@given(data=st.data(), size2=st.integers(1, MAX_SIZE), own_store=st.booleans())
def test_consistency_proofs_verify_and_bit_flips_fail(
    data: st.DataObject, size2: int, own_store: bool
) -> None:
    store = _store(size2) if own_store else FULL_STORE
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = merkle.consistency_proof(store, size1, size2)
    merkle.verify_consistency(size1, size2, _root(size1), _root(size2), proof)
    assert merkle.root_from_consistency_proof(size1, size2, _root(size1), proof) == _root(size2)
    if proof:
        item = data.draw(st.integers(0, len(proof) - 1), label="item")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(VerificationError):
            merkle.verify_consistency(
                size1, size2, _root(size1), _root(size2), _flip(proof, item, bit)
            )
    if size1 < size2:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(
                size1, size2, _flip([_root(size1)], 0, 3)[0], _root(size2), proof
            )


def test_every_bit_flip_fails_in_small_trees() -> None:
    for size in range(1, 17):
        for index in range(size):
            proof = merkle.inclusion_proof(FULL_STORE, index, size)
            for item in range(len(proof)):
                for bit in range(256):
                    with pytest.raises(VerificationError):
                        merkle.verify_inclusion(
                            LEAVES[index], index, size, _flip(proof, item, bit), _root(size)
                        )
        for size1 in range(1, size):
            proof = merkle.consistency_proof(FULL_STORE, size1, size)
            for item in range(len(proof)):
                for bit in range(0, 256, 7):
                    with pytest.raises(VerificationError):
                        merkle.verify_consistency(
                            size1, size, _root(size1), _root(size), _flip(proof, item, bit)
                        )


def test_proof_against_another_size_or_index_fails() -> None:
    # The size only fixes the proof's shape (sizes 17..32 share it for index 6); the root binds
    # the size, through the checkpoint that carries both.
    proof = merkle.inclusion_proof(FULL_STORE, 6, 20)
    for index, size in [(7, 20), (6, 16), (6, 33), (5, 20)]:
        with pytest.raises(REJECTED):
            merkle.verify_inclusion(LEAVES[6], index, size, proof, _root(20))
    proof = merkle.consistency_proof(FULL_STORE, 6, 20)
    for size1, size2 in [(5, 20), (7, 20), (6, 33)]:
        with pytest.raises(REJECTED):
            merkle.verify_consistency(size1, size2, _root(6), _root(20), proof)


# --- verification, errors ------------------------------------------------------------------


def test_inclusion_errors_say_what_failed() -> None:
    proof = merkle.inclusion_proof(FULL_STORE, 2, 8)
    with pytest.raises(VerificationError, match=r"calculated root [0-9a-f]{64} .*expected root"):
        merkle.verify_inclusion(LEAVES[2], 2, 8, proof, _root(7))
    with pytest.raises(VerificationError, match="has 2 hashes, want 3"):
        merkle.verify_inclusion(LEAVES[2], 2, 8, proof[:2], _root(8))
    with pytest.raises(VerificationError, match="not below tree size"):
        merkle.verify_inclusion(LEAVES[2], 8, 8, proof, _root(8))
    with pytest.raises(MalformedInput, match="leaf hash is 31 bytes"):
        merkle.verify_inclusion(LEAVES[2][:31], 2, 8, proof, _root(8))
    with pytest.raises(MalformedInput, match="inclusion proof hash 1 is 33 bytes"):
        merkle.verify_inclusion(LEAVES[2], 2, 8, [proof[0], proof[1] + b"!", proof[2]], _root(8))
    with pytest.raises(MalformedInput, match="root is 0 bytes"):
        merkle.verify_inclusion(LEAVES[2], 2, 8, proof, b"")


def test_consistency_errors_say_what_failed() -> None:
    proof = merkle.consistency_proof(FULL_STORE, 3, 8)
    with pytest.raises(VerificationError, match="old tree"):
        merkle.verify_consistency(3, 8, _root(2), _root(8), proof)
    with pytest.raises(VerificationError, match="calculated root"):
        merkle.verify_consistency(3, 8, _root(3), _root(9), proof)
    with pytest.raises(VerificationError, match="smaller than size1"):
        merkle.verify_consistency(8, 3, _root(8), _root(3), proof)
    with pytest.raises(VerificationError, match="empty tree"):
        merkle.verify_consistency(0, 8, EMPTY_ROOT, _root(8), [])
    with pytest.raises(VerificationError, match="is empty"):
        merkle.verify_consistency(3, 8, _root(3), _root(8), [])
    with pytest.raises(VerificationError, match="must be empty"):
        merkle.verify_consistency(8, 8, _root(8), _root(8), proof)
    with pytest.raises(MalformedInput, match="root2 is 3 bytes"):
        merkle.verify_consistency(3, 8, _root(3), b"abc", proof)
    merkle.verify_consistency(8, 8, _root(8), _root(8), [])


# --- audit JSON shapes ---------------------------------------------------------------------


def test_proof_json_round_trip() -> None:
    inclusion = InclusionProof(
        5, 9, _root(9), LEAVES[5], tuple(merkle.inclusion_proof(FULL_STORE, 5, 9))
    )
    data = inclusion.to_json()
    assert set(data) == {"leafIdx", "treeSize", "root", "leafHash", "proof"}
    assert InclusionProof.from_json(data) == inclusion
    inclusion.verify()
    consistency = ConsistencyProof(
        3, 9, _root(3), _root(9), tuple(merkle.consistency_proof(FULL_STORE, 3, 9))
    )
    assert set(consistency.to_json()) == {"size1", "size2", "root1", "root2", "proof"}
    assert ConsistencyProof.from_json(consistency.to_json()) == consistency
    consistency.verify()
    assert ConsistencyProof.from_json({**consistency.to_json(), "proof": None}).proof == ()


@pytest.mark.parametrize(
    "change",
    [
        {"leafIdx": "5"},
        {"treeSize": True},
        {"treeSize": -1},
        {"root": "not base64!"},
        {"leafHash": None},
        {"proof": "AAAA"},
        {"proof": [1]},
    ],
)
def test_proof_json_rejects_bad_fields(change: dict[str, object]) -> None:
    good = InclusionProof(0, 1, LEAVES[0], LEAVES[0], ()).to_json()
    with pytest.raises(MalformedInput):
        InclusionProof.from_json({**good, **change})
