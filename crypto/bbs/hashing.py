"""Hashing to scalars and to G1 (RFC 9380 expand_message_xmd with SHA-256)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from py_arkworks_bls12381 import G1Point

from accord.crypto.bbs.suite import API_ID, EXPAND_LENGTH, R
from accord.crypto.errors import MalformedInput

_B_IN_BYTES = 32  # SHA-256 output
_S_IN_BYTES = 64  # SHA-256 block


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1: ``length`` uniform bytes from ``msg`` under the tag ``dst``."""
    ell = -(-length // _B_IN_BYTES)
    if ell > 255 or length > 0xFFFF or len(dst) > 255:
        raise MalformedInput("expand_message_xmd: output or domain separation tag too long")
    dst_prime = dst + bytes([len(dst)])
    msg_prime = bytes(_S_IN_BYTES) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime
    b0 = hashlib.sha256(msg_prime).digest()
    b = hashlib.sha256(b0 + b"\x01" + dst_prime).digest()
    out = [b]
    for i in range(2, ell + 1):
        # b_i = H(strxor(b_0, b_(i-1)) || I2OSP(i, 1) || DST_prime)
        mixed = bytes(x ^ y for x, y in zip(b0, b, strict=True))
        b = hashlib.sha256(mixed + bytes([i]) + dst_prime).digest()
        out.append(b)
    return b"".join(out)[:length]


def hash_to_scalar(msg: bytes, dst: bytes) -> int:
    """OS2IP(expand_message(msg, dst, 48)) mod r: a scalar statistically close to uniform."""
    return int.from_bytes(expand_message_xmd(msg, dst, EXPAND_LENGTH), "big") % R


def messages_to_scalars(messages: Sequence[bytes], api_id: bytes = API_ID) -> list[int]:
    """Each message hashed on its own, so a scalar never depends on the other messages."""
    dst = api_id + b"MAP_MSG_TO_SCALAR_AS_HASH_"
    return [hash_to_scalar(bytes(m), dst) for m in messages]


def hash_to_curve_g1(msg: bytes, dst: bytes) -> G1Point:
    """BLS12381G1_XMD:SHA-256_SSWU_RO_ (RFC 9380 §8.8.1), computed by the arkworks binding."""
    if len(dst) > 255:
        raise MalformedInput("hash_to_curve: domain separation tag too long")
    return G1Point.hash_to_curve(msg, dst)
