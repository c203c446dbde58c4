"""The audit export shapes: proofs as JSON, in the transparency-dev test data format.

Hashes are base64; missing or ``null`` proofs read as empty. The objects hold what was received,
unverified: call ``verify()``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accord.crypto.errors import MalformedInput
from accord.crypto.merkle._checks import check_count
from accord.crypto.merkle.verify import verify_consistency, verify_inclusion


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _unb64(field: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise MalformedInput(f"{field} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise MalformedInput(f"{field} is not valid base64") from exc


def _int_field(data: Mapping[str, Any], field: str) -> int:
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedInput(f"{field} must be an integer")
    check_count(field, value)
    return value


def _proof_field(data: Mapping[str, Any]) -> tuple[bytes, ...]:
    value = data.get("proof")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedInput("proof must be a list of base64 strings or null")
    return tuple(_unb64(f"proof[{i}]", item) for i, item in enumerate(value))


@dataclass(frozen=True)
class InclusionProof:
    """An inclusion proof as exchanged (``leafIdx, treeSize, root, leafHash, proof``).

    Holds what was received, unverified: call :meth:`verify`.
    """

    leaf_index: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    proof: tuple[bytes, ...]

    def verify(self) -> None:
        verify_inclusion(self.leaf_hash, self.leaf_index, self.tree_size, self.proof, self.root)

    def to_json(self) -> dict[str, Any]:
        return {
            "leafIdx": self.leaf_index,
            "treeSize": self.tree_size,
            "root": _b64(self.root),
            "leafHash": _b64(self.leaf_hash),
            "proof": [_b64(h) for h in self.proof],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InclusionProof:
        return cls(
            leaf_index=_int_field(data, "leafIdx"),
            tree_size=_int_field(data, "treeSize"),
            root=_unb64("root", data.get("root")),
            leaf_hash=_unb64("leafHash", data.get("leafHash")),
            proof=_proof_field(data),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """A consistency proof as exchanged (``size1, size2, root1, root2, proof``).

    Holds what was received, unverified: call :meth:`verify`.
    """

    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: tuple[bytes, ...]

    def verify(self) -> None:
        verify_consistency(self.size1, self.size2, self.root1, self.root2, self.proof)

    def to_json(self) -> dict[str, Any]:
        return {
            "size1": self.size1,
            "size2": self.size2,
            "root1": _b64(self.root1),
            "root2": _b64(self.root2),
            "proof": [_b64(h) for h in self.proof],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsistencyProof:
        return cls(
            size1=_int_field(data, "size1"),
            size2=_int_field(data, "size2"),
            root1=_unb64("root1", data.get("root1")),
            root2=_unb64("root2", data.get("root2")),
            proof=_proof_field(data),
        )
