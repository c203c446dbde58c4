"""transparency-dev/merkle's RFC 9162 proof vectors: every broken proof rejected, every good one
accepted, and the happy paths are exactly the proofs our storage-based generator produces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import SHARED

from accord.crypto import merkle
from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.merkle import CompactRange, ConsistencyProof, InclusionProof, MemoryNodeStore

# Collection needs the case list before fixtures run; every test also takes the `vectors_dir`
# fixture, which skips (or fails under CI) when the vectors are absent.
_MERKLE = SHARED / "vectors" / "rfc9162-merkle"


def _cases(kind: str) -> list[str]:
    return sorted(p.relative_to(_MERKLE).as_posix() for p in _MERKLE.glob(f"{kind}/**/*.json"))


INCLUSION = _cases("inclusion")
CONSISTENCY = _cases("consistency")


def _load(vectors_dir: Path, rel: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((vectors_dir / "rfc9162-merkle" / rel).read_text())
    assert isinstance(case["wantErr"], bool)
    return case


def test_every_vector_is_collected(vectors_dir: Path) -> None:
    base = vectors_dir / "rfc9162-merkle"
    assert len(list(base.glob("inclusion/**/*.json"))) == len(INCLUSION) == 98
    assert len(list(base.glob("consistency/**/*.json"))) == len(CONSISTENCY) == 98


@pytest.mark.parametrize("rel", INCLUSION, ids=lambda rel: rel.removesuffix(".json"))
def test_inclusion_vector(vectors_dir: Path, rel: str) -> None:
    case = _load(vectors_dir, rel)
    proof = InclusionProof.from_json(case)
    if case["wantErr"]:
        with pytest.raises((VerificationError, MalformedInput)):
            proof.verify()
    else:
        proof.verify()


@pytest.mark.parametrize("rel", CONSISTENCY, ids=lambda rel: rel.removesuffix(".json"))
def test_consistency_vector(vectors_dir: Path, rel: str) -> None:
    case = _load(vectors_dir, rel)
    proof = ConsistencyProof.from_json(case)
    if case["wantErr"]:
        with pytest.raises((VerificationError, MalformedInput)):
            proof.verify()
    else:
        proof.verify()


@pytest.fixture
def reference_tree(vectors_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (vectors_dir / "rfc9162-merkle" / "reference_tree.json").read_text()
    )
    return data


def _reference_store(reference_tree: dict[str, Any]) -> tuple[list[bytes], MemoryNodeStore]:
    leaves = [merkle.leaf_hash(bytes.fromhex(h)) for h in reference_tree["leaf_inputs_hex"]]
    store = MemoryNodeStore()
    tree = CompactRange()
    for leaf in leaves:
        store.put(tree.append(leaf))
    return leaves, store


def test_reference_tree_roots(reference_tree: dict[str, Any]) -> None:
    leaves, store = _reference_store(reference_tree)
    roots = [bytes.fromhex(h) for h in reference_tree["root_by_tree_size_hex"]]
    assert len(roots) == len(leaves) + 1 == 9
    tree = CompactRange()
    for size, root in enumerate(roots):
        assert merkle.reference_root(leaves[:size]) == root
        assert merkle.root_at(store, size) == root
        assert tree.root() == root
        if size < len(leaves):
            tree.append(leaves[size])


def test_happy_paths_are_our_proofs(vectors_dir: Path, reference_tree: dict[str, Any]) -> None:
    """The good proofs in the vectors are byte for byte what we generate from storage."""
    _, store = _reference_store(reference_tree)
    happy = [rel for rel in INCLUSION if rel.endswith("happy-path.json")]
    for rel in happy:
        inclusion = InclusionProof.from_json(_load(vectors_dir, rel))
        generated = merkle.inclusion_proof(store, inclusion.leaf_index, inclusion.tree_size)
        assert tuple(generated) == inclusion.proof, rel
    happy = [rel for rel in CONSISTENCY if rel.endswith("happy-path.json")]
    for rel in happy:
        consistency = ConsistencyProof.from_json(_load(vectors_dir, rel))
        generated = merkle.consistency_proof(store, consistency.size1, consistency.size2)
        assert tuple(generated) == consistency.proof, rel
    assert len(happy) == 5
