"""KeyGen and SkToPk: a secret scalar SK in 1..r-1 and its public key W = SK * BP2."""

from __future__ import annotations

from accord.crypto.bbs.encoding import scalar_to_octets, to_scalar
from accord.crypto.bbs.hashing import hash_to_scalar
from accord.crypto.bbs.suite import CIPHERSUITE_ID, SCALAR_LENGTH, R, bp2
from accord.crypto.errors import MalformedInput

SECRET_KEY_LENGTH = SCALAR_LENGTH
# The draft's default; its test vectors pass api_id || "KEYGEN_DST_" explicitly instead.
KEYGEN_DST = CIPHERSUITE_ID + b"KEYGEN_DST_"


def key_gen(key_material: bytes, key_info: bytes = b"", key_dst: bytes = KEYGEN_DST) -> bytes:
    """A secret key derived from at least 32 secret random bytes (deterministic)."""
    if len(key_material) < 32:
        raise MalformedInput("BBS key material must be at least 32 bytes")
    if len(key_info) > 0xFFFF:
        raise MalformedInput("BBS key info must be at most 65535 bytes")
    sk = hash_to_scalar(key_material + len(key_info).to_bytes(2, "big") + key_info, key_dst)
    if sk == 0:  # probability ~2^-255; the draft treats it as INVALID
        raise MalformedInput("this key material yields no valid BBS secret key")
    return scalar_to_octets(sk)


def secret_key_scalar(sk: bytes) -> int:
    """The secret key as an integer, refusing anything outside 1..r-1."""
    if len(sk) != SECRET_KEY_LENGTH:
        raise MalformedInput(f"a BBS secret key is {SECRET_KEY_LENGTH} bytes, got {len(sk)}")
    value = int.from_bytes(sk, "big")
    if not 0 < value < R:
        raise MalformedInput("a BBS secret key is a scalar in 1..r-1")
    return value


def sk_to_pk(sk: bytes) -> bytes:
    """The compressed G2 public key of ``sk`` (96 bytes)."""
    return (bp2() * to_scalar(secret_key_scalar(sk))).to_compressed_bytes()
