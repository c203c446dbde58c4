"""The status map: membership and non-membership proofs verify; anything altered does not."""

from __future__ import annotations

import contextlib
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.statusmap import EMPTY, StatusMap, StatusProof, verify_status

keys = st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=60, unique=True)


def value(key: bytes, version: int = 0) -> bytes:
    return sha256(key + bytes([version])).digest()


@settings(max_examples=80, deadline=None)
@given(keys, st.binary(min_size=32, max_size=32))
def test_every_key_proves_and_absent_keys_prove_absent(present: list[bytes], probe: bytes) -> None:
    m = StatusMap()
    for k in present:
        m.set(k, value(k))
    root = m.root
    for k in present:
        proof = m.prove(k)
        verify_status(root, k, value(k), proof)
        with pytest.raises(VerificationError):
            verify_status(root, k, value(k, 1), proof)
        with pytest.raises(VerificationError):
            verify_status(root, k, None, proof)
    if probe not in present:
        verify_status(root, probe, None, m.prove(probe))
        with pytest.raises(VerificationError):
            verify_status(root, probe, value(probe), m.prove(probe))


def test_root_depends_only_on_contents_not_order() -> None:
    ks = [sha256(bytes([i])).digest() for i in range(50)]
    a, b = StatusMap(), StatusMap()
    for k in ks:
        a.set(k, value(k))
    for k in reversed(ks):
        b.set(k, value(k))
    assert a.root == b.root != EMPTY


def test_snapshots_keep_proving_after_updates() -> None:
    m = StatusMap()
    ks = [sha256(bytes([i])).digest() for i in range(20)]
    for k in ks:
        m.set(k, value(k))
    snap = m.snapshot()
    old_root = m.root
    m.set(ks[3], value(ks[3], 1))  # revoked later
    assert m.root != old_root
    verify_status(old_root, ks[3], value(ks[3]), snap.prove(ks[3]))
    verify_status(m.root, ks[3], value(ks[3], 1), m.prove(ks[3]))


def test_tampered_proofs_fail() -> None:
    m = StatusMap()
    ks = [sha256(bytes([i])).digest() for i in range(64)]
    for k in ks:
        m.set(k, value(k))
    proof = m.prove(ks[7])
    for i in range(len(proof.siblings)):
        siblings = list(proof.siblings)
        siblings[i] = bytes([siblings[i][0] ^ 1]) + siblings[i][1:]
        with pytest.raises(VerificationError):
            verify_status(
                m.root,
                ks[7],
                value(ks[7]),
                StatusProof(tuple(siblings), proof.terminal_key, proof.terminal_value_hash),
            )
    # a proof that stops one level too early or late does not reach the root
    with pytest.raises(VerificationError):
        verify_status(
            m.root,
            ks[7],
            value(ks[7]),
            StatusProof(proof.siblings[1:], proof.terminal_key, proof.terminal_value_hash),
        )
    with pytest.raises(VerificationError):
        verify_status(
            m.root,
            ks[7],
            value(ks[7]),
            StatusProof((*proof.siblings, EMPTY), proof.terminal_key, proof.terminal_value_hash),
        )


@given(
    st.dictionaries(
        st.text(max_size=20),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=50),
            st.lists(st.text(max_size=50), max_size=5),
        ),
    )
)
def test_proof_json_parsing_raises_only_malformed(data: dict) -> None:  # type: ignore[type-arg]
    with contextlib.suppress(MalformedInput):
        StatusProof.from_json(data)


def test_proof_json_round_trip() -> None:
    m = StatusMap()
    k = sha256(b"k").digest()
    m.set(k, value(k))
    m.set(sha256(b"j").digest(), value(k))
    proof = m.prove(k)
    assert StatusProof.from_json(proof.to_json()) == proof
