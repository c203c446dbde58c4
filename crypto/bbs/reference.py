"""A slow, independent ProofVerify over ``py_ecc`` (pure Python), to cross-check the fast path.

It shares no code with the arkworks-based modules beyond the suite's constants: hashing,
hash-to-curve, point decoding, subgroup checks and the pairing all come from ``py_ecc``. One
call takes seconds; tests use it, nothing else should.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from py_ecc.bls.hash import expand_message_xmd
from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.bls.point_compression import compress_G1, decompress_G1, decompress_G2
from py_ecc.bls.typing import G1Compressed, G1Uncompressed, G2Compressed, G2Uncompressed
from py_ecc.fields import optimized_bls12_381_FQ12 as FQ12
from py_ecc.optimized_bls12_381.optimized_curve import G2, add, curve_order, is_inf, multiply, neg
from py_ecc.optimized_bls12_381.optimized_pairing import final_exponentiate, pairing

from accord.crypto.bbs.suite import (
    API_ID,
    EXPAND_LENGTH,
    P1_SEED,
    POINT_LENGTH,
    PROOF_MIN_LENGTH,
    SCALAR_LENGTH,
)
from accord.crypto.errors import BbsVerificationError

# py_ecc annotates its hash parameter as a hash object, but calls it as a constructor.
_SHA256: Any = hashlib.sha256


def _h2s(msg: bytes, dst: bytes) -> int:
    return int.from_bytes(expand_message_xmd(msg, dst, EXPAND_LENGTH, _SHA256), "big") % (
        curve_order
    )


def _generators(count: int, seed: bytes) -> list[G1Uncompressed]:
    seed_dst = API_ID + b"SIG_GENERATOR_SEED_"
    v = expand_message_xmd(seed, seed_dst, EXPAND_LENGTH, _SHA256)
    out = []
    for i in range(1, count + 1):
        v = expand_message_xmd(v + i.to_bytes(8, "big"), seed_dst, EXPAND_LENGTH, _SHA256)
        out.append(hash_to_G1(v, API_ID + b"SIG_GENERATOR_DST_", _SHA256))
    return out


def _octets(point: G1Uncompressed) -> bytes:
    return int(compress_G1(point)).to_bytes(POINT_LENGTH, "big")


def _g1(data: bytes) -> G1Uncompressed:
    try:
        point = decompress_G1(G1Compressed(int.from_bytes(data, "big")))
    except ValueError as exc:
        raise BbsVerificationError("reference: not a G1 point") from exc
    if is_inf(point) or not is_inf(multiply(point, curve_order)):
        raise BbsVerificationError("reference: identity or outside the G1 subgroup")
    return point


def _g2(data: bytes) -> G2Uncompressed:
    try:
        point = decompress_G2(
            G2Compressed((int.from_bytes(data[:48], "big"), int.from_bytes(data[48:], "big")))
        )
    except ValueError as exc:
        raise BbsVerificationError("reference: not a G2 point") from exc
    if is_inf(point) or not is_inf(multiply(point, curve_order)):
        raise BbsVerificationError("reference: identity or outside the G2 subgroup")
    return point


def _msm(points: Sequence[G1Uncompressed], scalars: Sequence[int]) -> G1Uncompressed:
    acc = multiply(points[0], scalars[0] % curve_order)
    for point, scalar in zip(points[1:], scalars[1:], strict=True):
        acc = add(acc, multiply(point, scalar % curve_order))
    return acc


def reference_proof_verify(
    pk: bytes,
    proof: bytes,
    header: bytes,
    ph: bytes,
    disclosed_messages: Sequence[bytes],
    disclosed_indexes: Sequence[int],
) -> None:
    """The draft's ProofVerify, step by step; raises :class:`BbsVerificationError`."""
    extra = len(proof) - PROOF_MIN_LENGTH
    if len(pk) != 96 or extra < 0 or extra % SCALAR_LENGTH:
        raise BbsVerificationError("reference: wrong length")
    w = _g2(pk)
    abar, bbar, d = (_g1(proof[i : i + POINT_LENGTH]) for i in range(0, 3 * POINT_LENGTH, 48))
    scalars = [
        int.from_bytes(proof[i : i + SCALAR_LENGTH], "big")
        for i in range(3 * POINT_LENGTH, len(proof), SCALAR_LENGTH)
    ]
    if any(not 0 < s < curve_order for s in scalars):
        raise BbsVerificationError("reference: scalar out of range")
    e_hat, r1_hat, r3_hat, *m_hats, c = scalars
    count = len(disclosed_indexes) + len(m_hats)
    if sorted(set(disclosed_indexes)) != list(disclosed_indexes) or any(
        not 0 <= i < count for i in disclosed_indexes
    ):
        raise BbsVerificationError("reference: bad disclosed indexes")
    if len(disclosed_messages) != len(disclosed_indexes):
        raise BbsVerificationError("reference: one message per index")
    msgs = [_h2s(m, API_ID + b"MAP_MSG_TO_SCALAR_AS_HASH_") for m in disclosed_messages]
    p1 = _generators(1, P1_SEED)[0]
    q1, *h = _generators(count + 1, API_ID + b"MESSAGE_GENERATOR_SEED")
    dom = count.to_bytes(8, "big") + b"".join(_octets(p) for p in (q1, *h)) + API_ID
    domain = _h2s(pk + dom + len(header).to_bytes(8, "big") + header, API_ID + b"H2S_")
    t1 = _msm([bbar, abar, d], [c, e_hat, r1_hat])
    bv = _msm([p1, q1, *(h[i] for i in disclosed_indexes)], [1, domain, *msgs])
    undisclosed = [j for j in range(count) if j not in set(disclosed_indexes)]
    t2 = _msm([bv, d, *(h[j] for j in undisclosed)], [c, r3_hat, *m_hats])
    c_octs = len(disclosed_indexes).to_bytes(8, "big")
    for i, m in zip(disclosed_indexes, msgs, strict=True):
        c_octs += i.to_bytes(8, "big") + m.to_bytes(SCALAR_LENGTH, "big")
    c_octs += b"".join(_octets(p) for p in (abar, bbar, d, t1, t2))
    c_octs += domain.to_bytes(SCALAR_LENGTH, "big") + len(ph).to_bytes(8, "big") + ph
    if _h2s(c_octs, API_ID + b"H2S_") != c:
        raise BbsVerificationError("reference: challenge mismatch")
    # h(Abar, W) * h(Bbar, -BP2) == 1, with one shared final exponentiation.
    product = pairing(w, abar, final_exponentiate=False) * pairing(
        neg(G2), bbar, final_exponentiate=False
    )
    if final_exponentiate(product) != FQ12.one():
        raise BbsVerificationError("reference: pairing check failed")
