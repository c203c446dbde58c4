"""An authenticated map from consent commitments to their status: a compact sparse Merkle tree.

Keys are 32-byte commitments, walked bit by bit from the most significant. A leaf sits at the
shallowest depth where no other key shares its path prefix, so a tree of n keys is about
log2(n) deep rather than 256. Hashes are domain-separated:

    empty    = 32 zero bytes
    leaf     = SHA-256(0x00 || key || value_hash)
    internal = SHA-256(0x01 || left || right)

A proof for a key is the sibling hashes along its path down to where the path ends, plus what
ends it: the key's own leaf (membership), another key's leaf that shares the prefix, or an empty
subtree (both non-membership). The tree is persistent (path copying): a snapshot for every
published checkpoint costs O(log n), so proofs can be made against a checkpoint after newer
entries arrived. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accord.crypto.errors import MalformedInput, VerificationError

KEY_BYTES = 32
DEPTH = KEY_BYTES * 8
EMPTY = bytes(32)


def _leaf_hash(key: bytes, value_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + key + value_hash).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise MalformedInput(f"a status-map key is {KEY_BYTES} bytes, got {len(key)}")


@dataclass(frozen=True)
class _Leaf:
    key: bytes
    value_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class _Internal:
    left: _Node
    right: _Node
    hash: bytes


_Node = _Leaf | _Internal | None


def _hash(node: _Node) -> bytes:
    return EMPTY if node is None else node.hash


def _internal(left: _Node, right: _Node) -> _Node:
    # Canonical form: an internal node holds at least two leaves below it, so a lone leaf
    # floats up to replace its parent.
    if left is None and (right is None or isinstance(right, _Leaf)):
        return right
    if right is None and isinstance(left, _Leaf):
        return left
    return _Internal(left, right, _node_hash(_hash(left), _hash(right)))


def _put(node: _Node, key: bytes, value_hash: bytes, depth: int) -> _Node:
    if node is None:
        return _Leaf(key, value_hash, _leaf_hash(key, value_hash))
    if isinstance(node, _Leaf):
        if node.key == key:
            return _Leaf(key, value_hash, _leaf_hash(key, value_hash))
        # Split: push the existing leaf down until the two keys part ways.
        return _put(_push_down(node, depth), key, value_hash, depth)
    if _bit(key, depth):
        return _internal(node.left, _put(node.right, key, value_hash, depth + 1))
    return _internal(_put(node.left, key, value_hash, depth + 1), node.right)


def _push_down(leaf: _Leaf, depth: int) -> _Internal:
    """The same single leaf, one level lower (a transient, non-canonical node)."""
    left, right = (None, leaf) if _bit(leaf.key, depth) else (leaf, None)
    return _Internal(left, right, b"")  # hash recomputed by _internal on the way up


@dataclass(frozen=True)
class StatusProof:
    """Siblings from the root down, and what ends the path."""

    siblings: tuple[bytes, ...]
    # For membership this is the key's own leaf; otherwise another key's leaf or nothing.
    terminal_key: bytes | None
    terminal_value_hash: bytes | None

    def to_json(self) -> dict[str, Any]:
        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        return {
            "siblings": [b64(s) for s in self.siblings],
            "terminalKey": b64(self.terminal_key) if self.terminal_key is not None else None,
            "terminalValueHash": (
                b64(self.terminal_value_hash) if self.terminal_value_hash is not None else None
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusProof:
        def unb64(field: str, value: object, size: int) -> bytes:
            if not isinstance(value, str):
                raise MalformedInput(f"{field} must be a base64 string")
            try:
                raw = base64.b64decode(value, validate=True)
            except ValueError as exc:  # binascii.Error, or a str that is not ASCII
                raise MalformedInput(f"{field} is not valid base64") from exc
            if len(raw) != size:
                raise MalformedInput(f"{field} must be {size} bytes, got {len(raw)}")
            return raw

        siblings = data.get("siblings")
        if not isinstance(siblings, list) or len(siblings) > DEPTH:
            raise MalformedInput(f"siblings must be a list of at most {DEPTH} hashes")
        key, value = data.get("terminalKey"), data.get("terminalValueHash")
        if (key is None) != (value is None):
            raise MalformedInput("terminalKey and terminalValueHash come together or not at all")
        return cls(
            tuple(unb64(f"siblings[{i}]", s, 32) for i, s in enumerate(siblings)),
            None if key is None else unb64("terminalKey", key, KEY_BYTES),
            None if value is None else unb64("terminalValueHash", value, 32),
        )


class StatusMap:
    """A persistent map: every mutation returns nothing but keeps old snapshots valid."""

    def __init__(self, root: _Node = None) -> None:
        self._root = root

    @property
    def root(self) -> bytes:
        return _hash(self._root)

    def snapshot(self) -> StatusMap:
        """An immutable view of the map as it is now (O(1): nodes are never mutated)."""
        return StatusMap(self._root)

    def set(self, key: bytes, value_hash: bytes) -> None:
        _check_key(key)
        if len(value_hash) != 32:
            raise MalformedInput("a value hash is 32 bytes")
        self._root = _put(self._root, key, value_hash, 0)

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        node, depth = self._root, 0
        while isinstance(node, _Internal):
            node = node.right if _bit(key, depth) else node.left
            depth += 1
        return node.value_hash if isinstance(node, _Leaf) and node.key == key else None

    def prove(self, key: bytes) -> StatusProof:
        _check_key(key)
        siblings: list[bytes] = []
        node, depth = self._root, 0
        while isinstance(node, _Internal):
            if _bit(key, depth):
                siblings.append(_hash(node.left))
                node = node.right
            else:
                siblings.append(_hash(node.right))
                node = node.left
            depth += 1
        if isinstance(node, _Leaf):
            return StatusProof(tuple(siblings), node.key, node.value_hash)
        return StatusProof(tuple(siblings), None, None)


def root_from_proof(key: bytes, proof: StatusProof) -> bytes:
    """The root a proof implies for ``key`` (checks the terminal is on ``key``'s path)."""
    _check_key(key)
    depth = len(proof.siblings)
    if depth > DEPTH:
        raise MalformedInput("a status proof has at most 256 siblings")
    if proof.terminal_key is None or proof.terminal_value_hash is None:
        current = EMPTY
    else:
        other = proof.terminal_key
        for d in range(depth):
            if _bit(other, d) != _bit(key, d):
                raise VerificationError("the proof's terminal leaf is not on the key's path")
        current = _leaf_hash(other, proof.terminal_value_hash)
    for d in range(depth - 1, -1, -1):
        sibling = proof.siblings[d]
        current = _node_hash(sibling, current) if _bit(key, d) else _node_hash(current, sibling)
    return current


def verify_status(root: bytes, key: bytes, value_hash: bytes | None, proof: StatusProof) -> None:
    """Check that ``key`` maps to ``value_hash`` (or is absent, for None) under ``root``."""
    if proof.terminal_key == key:
        if value_hash is None or proof.terminal_value_hash != value_hash:
            raise VerificationError("the status map holds a different value for this key")
    elif value_hash is not None:
        raise VerificationError("the status map does not hold this key")
    calculated = root_from_proof(key, proof)
    if calculated != root:
        raise VerificationError(
            f"status proof does not reach the signed map root: calculated "
            f"{base64.b64encode(calculated).decode()}, expected {base64.b64encode(root).decode()}"
        )
