"""The BLS12-381-SHA-256 ciphersuite of draft-irtf-cfrg-bbs-signatures: identifiers and sizes."""

from __future__ import annotations

from functools import cache

from py_arkworks_bls12381 import G1Point, G2Point

CIPHERSUITE_ID = b"BBS_BLS12381G1_XMD:SHA-256_SSWU_RO_"
# The BBS Signatures Interface: generators by hash-to-curve ("H2G_"), messages by hash ("HM2S_").
API_ID = CIPHERSUITE_ID + b"H2G_HM2S_"

# r, the prime order of G1 and G2.
R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
SCALAR_LENGTH = 32
POINT_LENGTH = 48  # compressed G1
PUBLIC_KEY_LENGTH = 96  # compressed G2
SIGNATURE_LENGTH = POINT_LENGTH + SCALAR_LENGTH
PROOF_MIN_LENGTH = 3 * POINT_LENGTH + 4 * SCALAR_LENGTH
# Not in the draft: a proof's length sets how many generators a verifier derives (and caches),
# so an untrusted proof must not be able to ask for millions.
MAX_MESSAGES = 4096
# ceil((ceil(log2(r)) + k) / 8) with k = 128: enough bytes that OS2IP(...) mod r is unbiased.
EXPAND_LENGTH = 48

# P1 is a ciphersuite constant; the conformance tests re-derive it from its seed.
_P1 = bytes.fromhex(
    "a8ce256102840821a3e94ea9025e4662b205762f9776b3a766c872b948f1fd22"
    "5e7c59698588e70d11406d161b4e28c9"
)
P1_SEED = CIPHERSUITE_ID + b"H2G_HM2S_BP_MESSAGE_GENERATOR_SEED"


@cache
def p1() -> G1Point:
    """The fixed G1 point every signature's base B starts from."""
    return G1Point.from_compressed_bytes(_P1)


def bp2() -> G2Point:
    """The standard generator of G2 (public keys are SK * BP2)."""
    return G2Point()
