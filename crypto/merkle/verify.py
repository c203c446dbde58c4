"""Proof verification, following the reference implementation's stricter rules.

Inputs must satisfy ``index < size``, ``0 < size1 <= size2`` and carry 32-byte hashes. Verifiers
recompute the root, report expected vs calculated on mismatch, and raise
:class:`VerificationError` / :class:`MalformedInput`; they never return ``False``.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.crypto.errors import VerificationError
from accord.crypto.merkle._checks import check_count, check_hash
from accord.crypto.merkle.hashing import node_hash
from accord.crypto.merkle.nodes import trailing_zeros


def _decomp_inclusion(index: int, size: int) -> tuple[int, int]:
    """Lengths of the inner and border parts of the inclusion proof for ``index`` in ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, sibling in enumerate(proof):
        seed = node_hash(seed, sibling) if (index >> i) & 1 == 0 else node_hash(sibling, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    # Only left siblings count: this yields the hash of the older, smaller version of the tree.
    for i, sibling in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed


def _check_match(what: str, calculated: bytes, expected: bytes) -> None:
    if calculated != expected:
        raise VerificationError(
            f"{what}: calculated root {calculated.hex()} does not match "
            f"expected root {expected.hex()}"
        )


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` yields for leaf hash ``leaf`` at ``index`` in a tree of ``size``."""
    check_count("index", index)
    check_count("size", size)
    if index >= size:
        raise VerificationError(f"inclusion proof: index {index} is not below tree size {size}")
    check_hash("leaf hash", leaf)
    for i, digest in enumerate(proof):
        check_hash(f"inclusion proof hash {i}", digest)
    inner, border = _decomp_inclusion(index, size)
    if len(proof) != inner + border:
        raise VerificationError(
            f"inclusion proof for index {index} in tree size {size} has {len(proof)} hashes, "
            f"want {inner + border}"
        )
    return _chain_border_right(_chain_inner(leaf, proof[:inner], index), proof[inner:])


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``."""
    check_hash("root", root)
    calculated = root_from_inclusion_proof(leaf, index, size, proof)
    _check_match(f"inclusion proof for index {index} in tree size {size}", calculated, root)


def root_from_consistency_proof(
    size1: int, size2: int, root1: bytes, proof: Sequence[bytes]
) -> bytes:
    """Check ``proof`` against ``root1`` and return the root it yields for tree size ``size2``."""
    check_count("size1", size1)
    check_count("size2", size2)
    if size2 < size1:
        raise VerificationError(f"consistency proof: size2 {size2} is smaller than size1 {size1}")
    if size1 == 0:
        raise VerificationError("consistency proof: proving from an empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise VerificationError(
                f"consistency proof between equal sizes must be empty, got {len(proof)} hashes"
            )
        return root1
    if not proof:
        raise VerificationError(f"consistency proof from {size1} to {size2} is empty")
    check_hash("root1", root1)
    for i, digest in enumerate(proof):
        check_hash(f"consistency proof hash {i}", digest)

    inner, border = _decomp_inclusion(size1 - 1, size2)
    shift = trailing_zeros(size1)
    inner -= shift  # the proof starts at the level of the largest perfect subtree ending at size1
    if size1 == 1 << shift:  # the old tree is perfect: its root is the starting node
        seed, start = root1, 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise VerificationError(
            f"consistency proof from {size1} to {size2} has {len(proof)} hashes, "
            f"want {start + inner + border}"
        )
    path = proof[start:]
    mask = (size1 - 1) >> shift
    if start == 1:
        hash1 = _chain_border_right(_chain_inner_right(seed, path[:inner], mask), path[inner:])
        _check_match(f"consistency proof from {size1} to {size2}, old tree", hash1, root1)
    return _chain_border_right(_chain_inner(seed, path[:inner], mask), path[inner:])


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Raise unless ``proof`` shows tree ``(size1, root1)`` is a prefix of ``(size2, root2)``.

    When ``size1 == size2`` the proof must be empty and the roots equal; the roots are then
    compared as given (the reference vectors accept any equal byte strings there).
    """
    calculated = root_from_consistency_proof(size1, size2, root1, proof)
    if size1 != size2:
        check_hash("root2", root2)
    _check_match(f"consistency proof from {size1} to {size2}", calculated, root2)
