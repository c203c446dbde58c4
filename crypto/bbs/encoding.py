"""Octet encodings of scalars, points, public keys, signatures and proofs (strict decoding).

Every decoder refuses anything but the one canonical encoding of a valid value: compressed
points in the prime-order subgroup and not the identity, scalars in 1..r-1. Failures raise
:class:`BbsVerificationError`, since only verifiers decode untrusted bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from py_arkworks_bls12381 import G1Point, G2Point, Scalar

from accord.crypto.bbs.suite import (
    POINT_LENGTH,
    PROOF_MIN_LENGTH,
    PUBLIC_KEY_LENGTH,
    SCALAR_LENGTH,
    SIGNATURE_LENGTH,
    R,
)
from accord.crypto.errors import BbsVerificationError

# The top three bits of a compressed point: compression (set), infinity (clear), sign (either).
_FLAG_MASK = 0xE0
_COMPRESSED_FINITE = (0x80, 0xA0)


def i2osp8(value: int) -> bytes:
    """A non-negative integer (a count or an index) as 8 big-endian bytes."""
    return value.to_bytes(8, "big")


def scalar_to_octets(value: int) -> bytes:
    return (value % R).to_bytes(SCALAR_LENGTH, "big")


def to_scalar(value: int) -> Scalar:
    """The binding's scalar type for point multiplication (reduced mod r here, explicitly)."""
    return Scalar(value % R)


def octets_to_scalar(data: bytes, what: str) -> int:
    if len(data) != SCALAR_LENGTH:
        raise BbsVerificationError(f"{what} is not {SCALAR_LENGTH} bytes")
    value = int.from_bytes(data, "big")
    if not 0 < value < R:
        raise BbsVerificationError(f"{what} is not a scalar in 1..r-1")
    return value


def octets_to_point_g1(data: bytes, what: str) -> G1Point:
    if len(data) != POINT_LENGTH or data[0] & _FLAG_MASK not in _COMPRESSED_FINITE:
        raise BbsVerificationError(f"{what} is not a compressed, finite G1 point")
    try:
        # The binding checks that the point is on the curve and in the subgroup.
        point = G1Point.from_compressed_bytes(data)
    except ValueError as exc:
        raise BbsVerificationError(f"{what} is not a point of G1") from exc
    # The binding accepts some non-canonical forms (e.g. stray flag bits on the identity).
    if point == G1Point.identity() or point.to_compressed_bytes() != data:
        raise BbsVerificationError(f"{what} is not a canonical, non-identity G1 point")
    return point


def octets_to_pubkey(data: bytes) -> G2Point:
    """The signer's public key W, a non-identity point of G2."""
    if len(data) != PUBLIC_KEY_LENGTH or data[0] & _FLAG_MASK not in _COMPRESSED_FINITE:
        raise BbsVerificationError("the public key is not a compressed, finite G2 point")
    try:
        point = G2Point.from_compressed_bytes(data)
    except ValueError as exc:
        raise BbsVerificationError("the public key is not a point of G2") from exc
    if point == G2Point.identity() or point.to_compressed_bytes() != data:
        raise BbsVerificationError("the public key is not a canonical, non-identity G2 point")
    return point


@dataclass(frozen=True)
class Signature:
    a: G1Point
    e: int

    def to_octets(self) -> bytes:
        return self.a.to_compressed_bytes() + scalar_to_octets(self.e)


def octets_to_signature(data: bytes) -> Signature:
    if len(data) != SIGNATURE_LENGTH:
        raise BbsVerificationError(f"a signature is {SIGNATURE_LENGTH} bytes, got {len(data)}")
    return Signature(
        octets_to_point_g1(data[:POINT_LENGTH], "the signature's A"),
        octets_to_scalar(data[POINT_LENGTH:], "the signature's e"),
    )


@dataclass(frozen=True)
class Proof:
    """(Abar, Bbar, D, e^, r1^, r3^, (m^_j1, ..., m^_jU), c), as in the draft."""

    abar: G1Point
    bbar: G1Point
    d: G1Point
    e_hat: int
    r1_hat: int
    r3_hat: int
    m_hats: tuple[int, ...]
    challenge: int

    def to_octets(self) -> bytes:
        points = (self.abar, self.bbar, self.d)
        scalars = (self.e_hat, self.r1_hat, self.r3_hat, *self.m_hats, self.challenge)
        return b"".join(p.to_compressed_bytes() for p in points) + b"".join(
            scalar_to_octets(s) for s in scalars
        )


def undisclosed_count(length: int) -> int:
    """How many undisclosed messages a proof of ``length`` bytes carries."""
    if length < PROOF_MIN_LENGTH or (length - PROOF_MIN_LENGTH) % SCALAR_LENGTH:
        raise BbsVerificationError(f"a proof cannot be {length} bytes long")
    return (length - PROOF_MIN_LENGTH) // SCALAR_LENGTH


def octets_to_proof(data: bytes) -> Proof:
    undisclosed_count(len(data))
    points = [
        octets_to_point_g1(data[i * POINT_LENGTH : (i + 1) * POINT_LENGTH], f"proof point {i}")
        for i in range(3)
    ]
    rest = data[3 * POINT_LENGTH :]
    scalars = [
        octets_to_scalar(rest[i : i + SCALAR_LENGTH], f"proof scalar {i // SCALAR_LENGTH}")
        for i in range(0, len(rest), SCALAR_LENGTH)
    ]
    return Proof(
        points[0],
        points[1],
        points[2],
        scalars[0],
        scalars[1],
        scalars[2],
        tuple(scalars[3:-1]),
        scalars[-1],
    )
