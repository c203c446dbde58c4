"""Tree geometry and storage: node ids, the storage protocol proofs read from, and ranges.

Proof generation only ever reads stored hashes of complete subtrees through :class:`NodeReader`;
a ledger backs it with a ``(level, index) -> hash`` table, tests with :class:`MemoryNodeStore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from accord.crypto.errors import CryptoError, MalformedInput
from accord.errors import NotFound

MAX_TREE_SIZE = 1 << 64
"""Sizes and indices are uint64 in every other implementation; larger values are refused."""


@dataclass(frozen=True, order=True, slots=True)
class NodeID:
    """A node of the tree: ``level`` 0 holds the leaves; ``index`` counts from the left."""

    level: int
    index: int

    def __str__(self) -> str:
        return f"({self.level}, {self.index})"

    def parent(self) -> NodeID:
        return NodeID(self.level + 1, self.index >> 1)

    def sibling(self) -> NodeID:
        return NodeID(self.level, self.index ^ 1)

    def coverage(self) -> tuple[int, int]:
        """The ``[begin, end)`` range of leaves under this node."""
        return self.index << self.level, (self.index + 1) << self.level


class NodeNotFound(CryptoError, NotFound):
    """A node a proof needs is not stored: the tree is smaller than asked, or storage lost it."""


class NodeReader(Protocol):
    """Where proof generation gets stored hashes of complete subtrees.

    Returns one hash per id, in order, or raises :class:`NodeNotFound`. A ledger backs it with a
    ``(level, index) -> hash`` table.
    """

    def get_nodes(self, ids: Sequence[NodeID]) -> Sequence[bytes]: ...


class MemoryNodeStore:
    """A dict-backed :class:`NodeReader` for tests and small tools."""

    def __init__(self) -> None:
        self._nodes: dict[NodeID, bytes] = {}

    def put(self, nodes: Iterable[tuple[NodeID, bytes]]) -> None:
        for node_id, digest in nodes:
            self._nodes[node_id] = digest

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        try:
            return [self._nodes[node_id] for node_id in ids]
        except KeyError as exc:
            raise NodeNotFound(f"node {exc.args[0]} is not stored") from exc

    def __len__(self) -> int:
        return len(self._nodes)


def trailing_zeros(x: int) -> int:
    """The number of trailing zero bits of ``x`` (``x > 0``)."""
    return (x & -x).bit_length() - 1


def _decompose(begin: int, end: int) -> tuple[int, int]:
    """Bitmasks of the perfect-subtree sizes covering ``[begin, end)``: left part, right part."""
    if begin == 0:
        return 0, end
    xbegin = begin - 1
    mask = (1 << ((xbegin ^ end).bit_length() - 1)) - 1
    return ~xbegin & mask, end & mask


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """The minimal perfect subtrees covering leaves ``[begin, end)``, left to right."""
    if not 0 <= begin <= end:
        raise MalformedInput(f"invalid range [{begin}, {end})")
    left, right = _decompose(begin, end)
    ids: list[NodeID] = []
    pos = begin
    while left:  # along the left border, lower levels first
        level = trailing_zeros(left)
        ids.append(NodeID(level, pos >> level))
        pos += 1 << level
        left ^= 1 << level
    while right:  # along the right border, upper levels first
        level = right.bit_length() - 1
        ids.append(NodeID(level, pos >> level))
        pos += 1 << level
        right ^= 1 << level
    return ids
