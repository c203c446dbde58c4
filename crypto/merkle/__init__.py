"""RFC 9162 (RFC 6962) Merkle tree: hashing, proof verification, and storage-free proof planning.

Modelled on transparency-dev/merkle. Proof *generation* never rebuilds the tree: it names the
stored nodes (complete subtrees, ``(level, index)``) a proof needs, so a ledger backed by a
``(level, index) -> hash`` table answers in O(log n) lookups. A :class:`CompactRange` appends
leaves and reports every newly completed node to store. Verifiers follow the reference
implementation's stricter rules (``index < size``, ``0 < size1 <= size2``, 32-byte hashes) and
raise :class:`VerificationError` / :class:`MalformedInput`; they never return ``False``.

This package only re-exports; each part lives in its own module:

- :mod:`.hashing`: leaf and node hashes, the reference tree hash.
- :mod:`.nodes`: node ids, the :class:`NodeReader` storage protocol, covering ranges.
- :mod:`.proof`: which stored nodes a proof needs, and fetching them.
- :mod:`.verify`: recomputing roots from proofs.
- :mod:`.compact`: compact ranges, for appending leaves and computing roots.
- :mod:`.audit_json`: the JSON shapes proofs are exported in.
"""

from accord.crypto.merkle.audit_json import ConsistencyProof, InclusionProof
from accord.crypto.merkle.compact import CompactRange, root_at
from accord.crypto.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    leaf_hash,
    node_hash,
    reference_root,
)
from accord.crypto.merkle.nodes import (
    MAX_TREE_SIZE,
    MemoryNodeStore,
    NodeID,
    NodeNotFound,
    NodeReader,
    range_nodes,
)
from accord.crypto.merkle.proof import (
    ProofNodes,
    consistency_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
)
from accord.crypto.merkle.verify import (
    root_from_consistency_proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "CompactRange",
    "ConsistencyProof",
    "InclusionProof",
    "MemoryNodeStore",
    "NodeID",
    "NodeNotFound",
    "NodeReader",
    "ProofNodes",
    "consistency_nodes",
    "consistency_proof",
    "inclusion_nodes",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "reference_root",
    "root_at",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]
