"""Argument checks shared by proof planning, verification, compact ranges and the JSON shapes."""

from __future__ import annotations

from accord.crypto.errors import MalformedInput
from accord.crypto.merkle.hashing import HASH_SIZE
from accord.crypto.merkle.nodes import MAX_TREE_SIZE


def check_count(name: str, value: int) -> None:
    if not 0 <= value < MAX_TREE_SIZE:
        raise MalformedInput(f"{name} must be in [0, 2**64), got {value}")


def check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise MalformedInput(f"{name} is {len(value)} bytes, want {HASH_SIZE}")
