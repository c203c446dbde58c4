"""accord.crypto.bbs: round trips, refusals (always raised, never False), strict decoding, and a
proof of ours checked by the independent py_ecc reference verifier."""

from __future__ import annotations

import hashlib

import pytest
from py_ecc.bls.hash import expand_message_xmd as ecc_expand_message_xmd
from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.bls.point_compression import compress_G1

from accord.crypto import bbs
from accord.crypto.bbs import suite
from accord.crypto.bbs.reference import reference_proof_verify
from accord.crypto.errors import (
    BbsVerificationError,
    CryptoError,
    MalformedInput,
    VerificationError,
)
from accord.errors import InvalidInput

SK = bbs.key_gen(b"accord unit-test key material, 32+ bytes long", b"issuer-1")
PK = bbs.sk_to_pk(SK)
HEADER = b"accord-credential-v1"
PH = b"verifier nonce 1"
MESSAGES = [b"customer:42", b"segment:gold", b"", b"ltv:1234.5", b"\x00\xff" * 40]
SIGNATURE = bbs.sign(SK, PK, HEADER, MESSAGES)
DISCLOSED = [1, 3]

R = suite.R
G1_IDENTITY = b"\xc0" + bytes(47)
G2_IDENTITY = b"\xc0" + bytes(95)
# x = 0 gives (0, 2) on E1: a point of order 3, on the curve but outside G1.
G1_OUTSIDE_SUBGROUP = b"\x80" + bytes(47)


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _proof(ph: bytes = PH, indexes: list[int] = DISCLOSED) -> bytes:
    return bbs.proof_gen(PK, SIGNATURE, HEADER, ph, MESSAGES, indexes)


def _disclosed(indexes: list[int] = DISCLOSED) -> list[bytes]:
    return [MESSAGES[i] for i in indexes]


def test_the_error_is_a_typed_verification_failure() -> None:
    assert issubclass(BbsVerificationError, VerificationError)
    assert issubclass(BbsVerificationError, CryptoError)
    assert issubclass(BbsVerificationError, InvalidInput)


# --- keys and signatures ---------------------------------------------------------------


def test_keys_have_the_suite_lengths() -> None:
    assert len(SK) == bbs.SECRET_KEY_LENGTH == 32
    assert len(PK) == bbs.PUBLIC_KEY_LENGTH == 96
    assert bbs.key_gen(b"k" * 32) != bbs.key_gen(b"k" * 32, b"other info")


def test_key_gen_refuses_short_material() -> None:
    with pytest.raises(MalformedInput):
        bbs.key_gen(b"k" * 31)


@pytest.mark.parametrize("sk", [bytes(32), R.to_bytes(32, "big"), b"\x01" * 31])
def test_secret_keys_out_of_range_are_refused(sk: bytes) -> None:
    with pytest.raises(MalformedInput):
        bbs.sk_to_pk(sk)


def test_sign_verify_round_trip() -> None:
    assert len(SIGNATURE) == bbs.SIGNATURE_LENGTH == 80
    assert bbs.verify(PK, SIGNATURE, HEADER, MESSAGES) is None
    # Deterministic: the same inputs sign to the same bytes.
    assert bbs.sign(SK, PK, HEADER, MESSAGES) == SIGNATURE
    empty = bbs.sign(SK, PK)
    assert bbs.verify(PK, empty) is None


def test_sign_refuses_a_foreign_public_key() -> None:
    other = bbs.sk_to_pk(bbs.key_gen(b"another signer's key material..." + b"!"))
    with pytest.raises(MalformedInput):
        bbs.sign(SK, other, HEADER, MESSAGES)


@pytest.mark.parametrize(
    "change",
    ["message", "extra message", "missing message", "order", "header", "public key"],
)
def test_verify_refuses_anything_else(change: str) -> None:
    pk, header, messages = PK, HEADER, list(MESSAGES)
    if change == "message":
        messages[0] = b"customer:43"
    elif change == "extra message":
        messages.append(b"more")
    elif change == "missing message":
        messages.pop()
    elif change == "order":
        messages[0], messages[1] = messages[1], messages[0]
    elif change == "header":
        header = b"another header"
    else:
        pk = bbs.sk_to_pk(bbs.key_gen(b"another signer's key material..." + b"!"))
    with pytest.raises(BbsVerificationError):
        bbs.verify(pk, SIGNATURE, header, messages)


@pytest.mark.parametrize("index", [0, 20, 47, 48, 60, 79])
def test_verify_refuses_a_tampered_signature(index: int) -> None:
    with pytest.raises(BbsVerificationError):
        bbs.verify(PK, _flip(SIGNATURE, index), HEADER, MESSAGES)


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        SIGNATURE[:-1],
        SIGNATURE + b"\x00",
        G1_IDENTITY + SIGNATURE[48:],
        b"\xe0" + bytes(47) + SIGNATURE[48:],  # every flag bit set
        G1_OUTSIDE_SUBGROUP + SIGNATURE[48:],
        b"\x1f" * 48 + SIGNATURE[48:],  # uncompressed flag
        SIGNATURE[:48] + bytes(32),  # e = 0
        SIGNATURE[:48] + R.to_bytes(32, "big"),  # e = r
        SIGNATURE[:48] + b"\xff" * 32,
    ],
    ids=lambda s: s[:1].hex() + f"-{len(s)}",
)
def test_verify_refuses_malformed_signatures(signature: bytes) -> None:
    with pytest.raises(BbsVerificationError):
        bbs.verify(PK, signature, HEADER, MESSAGES)


@pytest.mark.parametrize(
    "pk",
    [b"", PK[:-1], PK + b"\x00", G2_IDENTITY, b"\xe0" + bytes(95), b"\x80" + bytes(95), PK[:1]],
    ids=lambda pk: pk[:1].hex() + f"-{len(pk)}",
)
def test_malformed_public_keys_are_refused(pk: bytes) -> None:
    with pytest.raises(BbsVerificationError):
        bbs.verify(pk, SIGNATURE, HEADER, MESSAGES)
    with pytest.raises(BbsVerificationError):
        bbs.proof_verify(pk, _proof(), HEADER, PH, _disclosed(), DISCLOSED)


# --- proofs ----------------------------------------------------------------------------


@pytest.mark.parametrize("indexes", [[], [0], DISCLOSED, [0, 1, 2, 3, 4]])
def test_proof_round_trip(indexes: list[int]) -> None:
    proof = _proof(indexes=indexes)
    assert len(proof) == 3 * 48 + 32 * (4 + len(MESSAGES) - len(indexes))
    assert bbs.proof_verify(PK, proof, HEADER, PH, _disclosed(indexes), indexes) is None


def test_proofs_of_one_signature_are_unlinkable_bytes() -> None:
    first, second = _proof(), _proof()
    assert first != second
    # Not even a component repeats: Abar, Bbar, D and every scalar are re-randomised.
    chunks = [first[i : i + 32] for i in range(0, len(first), 32)]
    assert not set(chunks) & {second[i : i + 32] for i in range(0, len(second), 32)}
    for proof in (first, second):
        bbs.proof_verify(PK, proof, HEADER, PH, _disclosed(), DISCLOSED)


def test_seeded_randomness_reproduces_a_proof() -> None:
    seed = b"test seed"
    proofs = {
        bbs.proof_gen(
            PK, SIGNATURE, HEADER, PH, MESSAGES, DISCLOSED, random_scalars=bbs.seeded(seed)
        )
        for _ in range(2)
    }
    assert len(proofs) == 1


def test_a_different_presentation_header_is_refused() -> None:
    proof = _proof()
    with pytest.raises(BbsVerificationError):
        bbs.proof_verify(PK, proof, HEADER, b"verifier nonce 2", _disclosed(), DISCLOSED)
    with pytest.raises(BbsVerificationError):
        bbs.proof_verify(PK, proof, HEADER, b"", _disclosed(), DISCLOSED)


@pytest.mark.parametrize(
    "change", ["message", "index", "header", "public key", "fewer indexes", "unsorted"]
)
def test_proof_verify_refuses_other_claims(change: str) -> None:
    proof = _proof(indexes=[1, 3])
    pk, header, messages, indexes = PK, HEADER, _disclosed([1, 3]), [1, 3]
    if change == "message":
        messages[0] = b"segment:platinum"
    elif change == "index":
        indexes = [1, 2]
    elif change == "header":
        header = b"another header"
    elif change == "public key":
        pk = bbs.sk_to_pk(bbs.key_gen(b"another signer's key material..." + b"!"))
    elif change == "fewer indexes":
        messages, indexes = messages[:1], indexes[:1]
    else:
        messages, indexes = messages[::-1], indexes[::-1]
    with pytest.raises(BbsVerificationError):
        bbs.proof_verify(pk, proof, header, PH, messages, indexes)


def test_proof_verify_refuses_every_tampered_byte_region() -> None:
    proof = _proof()
    # A byte in Abar, Bbar, D, e^, r1^, r3^, each m^ and the challenge.
    offsets = [0, 50, 100, 144 + 5, 176 + 5, 208 + 5, 240 + 5, 272 + 5, 304 + 5, len(proof) - 1]
    for offset in offsets:
        with pytest.raises(BbsVerificationError):
            bbs.proof_verify(PK, _flip(proof, offset), HEADER, PH, _disclosed(), DISCLOSED)


def test_proof_verify_refuses_malformed_proofs() -> None:
    proof = _proof()
    scalar_zero = proof[:144] + bytes(32) + proof[176:]
    scalar_r = proof[:144] + R.to_bytes(32, "big") + proof[176:]
    bad = [
        b"",
        proof[: 3 * 48 + 4 * 32 - 1],  # shorter than any proof
        proof[:-1],  # not a whole number of scalars
        proof + bytes(32),  # one commitment too many for these messages
        proof[:-32],
        G1_IDENTITY + proof[48:],
        proof[:48] + G1_OUTSIDE_SUBGROUP + proof[96:],
        proof[:96] + b"\xe0" + bytes(47) + proof[144:],
        scalar_zero,
        scalar_r,
    ]
    for candidate in bad:
        with pytest.raises(BbsVerificationError):
            bbs.proof_verify(PK, candidate, HEADER, PH, _disclosed(), DISCLOSED)
    with pytest.raises(BbsVerificationError):
        bbs.proof_verify(PK, proof, HEADER, PH, _disclosed(), [1, 99])


def test_proof_gen_refuses_bad_inputs() -> None:
    for indexes in ([5], [-1], [3, 1], [1, 1]):
        with pytest.raises(MalformedInput):
            bbs.proof_gen(PK, SIGNATURE, HEADER, PH, MESSAGES, indexes)
    # A signature that does not verify yields no proof.
    with pytest.raises(BbsVerificationError):
        bbs.proof_gen(PK, SIGNATURE, HEADER, PH, [b"other", *MESSAGES[1:]], DISCLOSED)
    with pytest.raises(BbsVerificationError):
        bbs.proof_gen(PK, SIGNATURE[:-1], HEADER, PH, MESSAGES, DISCLOSED)


def test_our_proof_passes_the_py_ecc_reference_verifier() -> None:
    proof = _proof()
    reference_proof_verify(PK, proof, HEADER, PH, _disclosed(), DISCLOSED)
    with pytest.raises(BbsVerificationError):
        reference_proof_verify(PK, proof, HEADER, b"another ph", _disclosed(), DISCLOSED)


# --- building blocks against py_ecc ------------------------------------------------------


@pytest.mark.parametrize("length", [1, 32, 48, 100, 255 * 32])
def test_expand_message_xmd_matches_py_ecc(length: int) -> None:
    msg, dst = b"abc" * 7, b"QUUX-V01-CS02-with-expander-SHA256-128"
    expected = ecc_expand_message_xmd(msg, dst, length, hashlib.sha256)  # type: ignore[arg-type]
    assert bbs.expand_message_xmd(msg, dst, length) == expected


def test_expand_message_xmd_limits() -> None:
    with pytest.raises(MalformedInput):
        bbs.expand_message_xmd(b"", b"x" * 256, 32)
    with pytest.raises(MalformedInput):
        bbs.expand_message_xmd(b"", b"dst", 255 * 32 + 1)
    with pytest.raises(MalformedInput):
        bbs.seeded_random_scalars(b"seed", 171)


def test_hash_to_curve_g1_matches_py_ecc() -> None:
    dst = bbs.API_ID + b"SIG_GENERATOR_DST_"
    ours = bbs.hash_to_curve_g1(b"accord", dst).to_compressed_bytes()
    theirs = hash_to_G1(b"accord", dst, hashlib.sha256)  # type: ignore[arg-type]
    assert ours == int(compress_G1(theirs)).to_bytes(48, "big")


def test_generators_extend_consistently() -> None:
    five = bbs.create_generators(5)
    assert bbs.create_generators(3) == five[:3]
    assert bbs.create_generators(8)[:5] == five
    assert len(set(p.to_compressed_bytes() for p in five)) == 5
    # Another api_id gives unrelated generators.
    assert bbs.create_generators(1, b"ACCORD_TEST_API_")[0] != five[0]


def test_random_scalars_are_in_range_and_fresh() -> None:
    draws = bbs.calculate_random_scalars(8)
    assert len(draws) == 8 and all(0 <= s < R for s in draws)
    assert len(set(draws)) == 8
    assert bbs.seeded_random_scalars(b"s", 3) == bbs.seeded_random_scalars(b"s", 3)


def test_message_count_is_capped_before_any_generator_is_derived() -> None:
    # A proof claiming 5000 undisclosed messages is refused before 5001 generators are hashed.
    oversized = _proof()[: 3 * 48] + b"\x01" * 32 * (4 + 5000)
    with pytest.raises(BbsVerificationError):
        bbs.proof_verify(PK, oversized, HEADER, PH)
    with pytest.raises(BbsVerificationError):
        bbs.verify(PK, SIGNATURE, HEADER, [b""] * (suite.MAX_MESSAGES + 1))
    with pytest.raises(MalformedInput):
        bbs.sign(SK, PK, HEADER, [b""] * (suite.MAX_MESSAGES + 1))
