"""Storage-free proof planning: which stored nodes an inclusion or consistency proof needs.

Planning never rebuilds the tree: it names the complete subtrees, ``(level, index)``, a proof
is made of, so a ledger backed by a ``(level, index) -> hash`` table answers in O(log n) lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord.crypto.errors import MalformedInput
from accord.crypto.merkle._checks import check_count, check_hash
from accord.crypto.merkle.hashing import node_hash
from accord.crypto.merkle.nodes import NodeID, NodeReader, range_nodes, trailing_zeros


@dataclass(frozen=True)
class ProofNodes:
    """Which stored nodes make up a proof, and how to fold some of them into one.

    ``ids[ephem_begin:ephem_end]`` are the stored children (lowest level first) of the one
    *ephemeral* node, the right-border root of an incomplete subtree, which is never stored and
    is rehashed from them. When that slice is empty, every proof hash is a stored node.
    """

    ids: tuple[NodeID, ...]
    ephem_begin: int = 0
    ephem_end: int = 0
    ephemeral: NodeID | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.ephem_begin <= self.ephem_end <= len(self.ids):
            raise MalformedInput(
                f"ephemeral slice [{self.ephem_begin}, {self.ephem_end}) is outside the "
                f"{len(self.ids)} node ids"
            )

    def rehash(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Turn the hashes of :attr:`ids` (same order) into the proof."""
        if len(hashes) != len(self.ids):
            raise MalformedInput(f"got {len(hashes)} node hashes for {len(self.ids)} node ids")
        for node_id, digest in zip(self.ids, hashes, strict=True):
            check_hash(f"stored node {node_id}", digest)
        proof = list(hashes[: self.ephem_begin])
        if self.ephem_begin < self.ephem_end:
            folded = hashes[self.ephem_begin]
            for left in hashes[self.ephem_begin + 1 : self.ephem_end]:
                folded = node_hash(left, folded)
            proof.append(folded)
        proof.extend(hashes[self.ephem_end :])
        return proof

    def fetch(self, reader: NodeReader) -> list[bytes]:
        """Read the nodes from storage and build the proof."""
        return self.rehash(reader.get_nodes(self.ids) if self.ids else [])

    def _skip_first(self) -> ProofNodes:
        if self.ephem_begin < self.ephem_end:
            return ProofNodes(
                self.ids[1:], self.ephem_begin - 1, self.ephem_end - 1, self.ephemeral
            )
        return ProofNodes(self.ids[1:])


def _nodes(index: int, level: int, size: int) -> ProofNodes:
    """Nodes proving that ``(level, index)`` is in the tree of ``size`` leaves (itself first)."""
    # The fork is where the paths to (level, index) and to the tree's right edge diverge; its
    # sibling is the ephemeral node, covered by the compact range to the right of the fork.
    inner = (index ^ (size >> level)).bit_length() - 1
    fork = NodeID(level + inner, index >> inner)
    begin, end = fork.coverage()
    node = NodeID(level, index)
    ids = [node]
    while node.level < fork.level:
        ids.append(node.sibling())
        node = node.parent()
    first = len(ids)
    ids.extend(reversed(range_nodes(end, size)))
    last = len(ids)
    ids.extend(reversed(range_nodes(0, begin)))
    if first >= last:
        return ProofNodes(tuple(ids))
    return ProofNodes(tuple(ids), first, last, fork.sibling())


def inclusion_nodes(index: int, size: int) -> ProofNodes:
    """Plan the inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    check_count("index", index)
    check_count("size", size)
    if index >= size:
        raise MalformedInput(f"index {index} is out of range for tree size {size}")
    return _nodes(index, 0, size)._skip_first()


def consistency_nodes(size1: int, size2: int) -> ProofNodes:
    """Plan the consistency proof from tree size ``size1`` to ``size2`` (``0 < size1 <= size2``)."""
    check_count("size1", size1)
    check_count("size2", size2)
    if size1 > size2:
        raise MalformedInput(f"size1 {size1} is greater than size2 {size2}")
    if size1 == 0:
        raise MalformedInput("a consistency proof from an empty tree is meaningless")
    if size1 == size2:
        return ProofNodes(())
    # The proof starts at the largest perfect subtree ending at size1; its inclusion proof in
    # the larger tree follows. A perfect old tree is known to the verifier, so it is skipped.
    level = trailing_zeros(size1)
    nodes = _nodes((size1 - 1) >> level, level, size2)
    if size1 & (size1 - 1) == 0:
        return nodes._skip_first()
    return nodes


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves, from storage."""
    return inclusion_nodes(index, size).fetch(reader)


def consistency_proof(reader: NodeReader, size1: int, size2: int) -> list[bytes]:
    """The consistency proof from ``size1`` to ``size2``, from storage."""
    return consistency_nodes(size1, size2).fetch(reader)
