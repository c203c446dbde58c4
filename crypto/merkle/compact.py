"""Compact ranges: the right border of a tree, enough to append leaves and compute roots."""

from __future__ import annotations

from collections.abc import Sequence

from accord.crypto.errors import MalformedInput
from accord.crypto.merkle._checks import check_count, check_hash
from accord.crypto.merkle.hashing import EMPTY_ROOT, node_hash
from accord.crypto.merkle.nodes import MAX_TREE_SIZE, NodeID, NodeReader, range_nodes


class CompactRange:
    """The right border of a tree of ``size`` leaves: one hash per perfect subtree, left to right.

    Enough to append leaves and compute the root without the rest of the tree; what
    :meth:`append` returns is every node that became complete, to be stored for proofs.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        check_count("size", size)
        if len(hashes) != size.bit_count():
            raise MalformedInput(
                f"a compact range of size {size} has {size.bit_count()} hashes, got {len(hashes)}"
            )
        for i, digest in enumerate(hashes):
            check_hash(f"compact range hash {i}", digest)
        self._size = size
        self._hashes = list(hashes)

    @staticmethod
    def node_ids(size: int) -> list[NodeID]:
        """The stored nodes whose hashes make up the compact range of a tree of ``size`` leaves."""
        check_count("size", size)
        return range_nodes(0, size)

    @classmethod
    def from_reader(cls, reader: NodeReader, size: int) -> CompactRange:
        """Rebuild the range of a tree of ``size`` leaves from stored nodes (O(log n) reads)."""
        ids = cls.node_ids(size)
        hashes = list(reader.get_nodes(ids)) if ids else []
        return cls(size, hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[NodeID, bytes]]:
        """Append a leaf hash; return the newly completed nodes (the leaf first) to store."""
        check_hash("leaf hash", leaf)
        if self._size + 1 >= MAX_TREE_SIZE:
            raise MalformedInput("the tree is full")
        node = NodeID(0, self._size)
        digest = leaf
        completed = [(node, digest)]
        while node.index & 1:  # a right child: merge with the left sibling on the border
            digest = node_hash(self._hashes.pop(), digest)
            node = node.parent()
            completed.append((node, digest))
        self._hashes.append(digest)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """The root hash of the tree of :attr:`size` leaves (SHA-256 of "" when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        digest = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            digest = node_hash(left, digest)
        return digest

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self._size, self._hashes) == (other._size, other._hashes)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"


def root_at(reader: NodeReader, size: int) -> bytes:
    """The root of the tree of ``size`` leaves, from stored nodes."""
    return CompactRange.from_reader(reader, size).root()
