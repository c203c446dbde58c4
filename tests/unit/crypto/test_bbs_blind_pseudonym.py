"""accord.crypto.bbs.blind and .pseudonym: round trips and what each party can not do.

The signer refuses a commitment whose proof does not verify; a holder cannot claim another
blind, entropy or nym; a pseudonym proof is refused under another context, another pseudonym,
another presentation header or other disclosed messages; one holder shows one pseudonym per
context and unrelated ones across contexts.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accord.crypto import bbs
from accord.crypto.bbs import blind, pseudonym
from accord.crypto.errors import BbsVerificationError, MalformedInput

SK = bbs.key_gen(b"accord blind unit-test key material, 32+ bytes", b"issuer-blind")
PK = bbs.sk_to_pk(SK)
HEADER = b"accord-consent-v1"
MESSAGES = [b"channel:shop", b"purpose:scoring", b"expires:2027-01-01"]
COMMITTED = [b"holder secret", b""]
CONTEXT = b"verifier:pay"


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.fixture(scope="module")
def blind_credential() -> tuple[bytes, int]:
    commitment, prover_blind = blind.commit(COMMITTED)
    return blind.blind_sign(SK, PK, commitment, HEADER, MESSAGES), prover_blind


def test_blind_round_trip(blind_credential: tuple[bytes, int]) -> None:
    signature, prover_blind = blind_credential
    blind.blind_verify(PK, signature, HEADER, MESSAGES, COMMITTED, prover_blind)
    proof = blind.blind_proof_gen(
        PK, signature, HEADER, b"ph", MESSAGES, COMMITTED, [1], [0], prover_blind
    )
    blind.blind_proof_verify(PK, proof, HEADER, b"ph", 3, [MESSAGES[1]], [COMMITTED[0]], [1], [0])
    with pytest.raises(BbsVerificationError):  # another committed message claimed
        blind.blind_proof_verify(PK, proof, HEADER, b"ph", 3, [MESSAGES[1]], [b"x"], [1], [0])
    with pytest.raises(BbsVerificationError):  # the committed message claimed as a signer's
        blind.blind_proof_verify(PK, proof, HEADER, b"ph", 4, [MESSAGES[1]], [], [1], [])


def test_a_wrong_blind_or_committed_message_does_not_verify(
    blind_credential: tuple[bytes, int],
) -> None:
    signature, prover_blind = blind_credential
    with pytest.raises(BbsVerificationError):
        blind.blind_verify(PK, signature, HEADER, MESSAGES, COMMITTED, prover_blind + 1)
    with pytest.raises(BbsVerificationError):
        blind.blind_verify(PK, signature, HEADER, MESSAGES, [b"other", b""], prover_blind)


@pytest.mark.parametrize("index", [0, 47, 48, 80, 111, 143])
def test_the_signer_refuses_a_tampered_commitment(index: int) -> None:
    commitment, _ = blind.commit(COMMITTED)
    with pytest.raises(BbsVerificationError):
        blind.blind_sign(SK, PK, _flip(commitment, index), HEADER, MESSAGES)


@pytest.mark.parametrize("cut", [1, 32, 48 + 63])
def test_the_signer_refuses_a_malformed_commitment(cut: int) -> None:
    commitment, _ = blind.commit(COMMITTED)
    with pytest.raises(BbsVerificationError):
        blind.blind_sign(SK, PK, commitment[:-cut], HEADER, MESSAGES)


def test_the_signer_refuses_a_commitment_made_under_another_api_id() -> None:
    commitment, _ = pseudonym.nym_commit([], 5)
    with pytest.raises(BbsVerificationError):
        blind.blind_sign(SK, PK, commitment, HEADER, MESSAGES)


@pytest.fixture(scope="module")
def nym_holder() -> tuple[bytes, int, int]:
    """(signature, nym_secret, prover_blind) of a holder with one committed message."""
    prover_nym = pseudonym.random_nym()
    commitment, prover_blind = pseudonym.nym_commit([b"holder secret"], prover_nym)
    signature, entropy = pseudonym.blind_sign_with_nym(SK, PK, commitment, HEADER, MESSAGES)
    nym_secret = pseudonym.blind_verify_with_nym(
        PK, signature, HEADER, MESSAGES, [b"holder secret"], prover_nym, entropy, prover_blind
    )
    assert nym_secret != prover_nym  # the signer's entropy is in it
    with pytest.raises(BbsVerificationError):  # the holder cannot claim another entropy
        pseudonym.blind_verify_with_nym(
            PK, signature, HEADER, MESSAGES, [b"holder secret"], prover_nym, 0, prover_blind
        )
    return signature, nym_secret, prover_blind


def _nym_proof(holder: tuple[bytes, int, int], ph: bytes, context: bytes) -> tuple[bytes, bytes]:
    signature, nym_secret, prover_blind = holder
    return pseudonym.proof_gen_with_nym(
        PK,
        signature,
        HEADER,
        ph,
        nym_secret,
        context,
        MESSAGES,
        [b"holder secret"],
        [0, 1],
        [],
        prover_blind,
    )


def _verify(
    proof: bytes,
    nym: bytes,
    ph: bytes = b"ph",
    context: bytes = CONTEXT,
    shown: tuple[bytes, ...] = (MESSAGES[0], MESSAGES[1]),
) -> None:
    pseudonym.proof_verify_with_nym(
        PK,
        proof,
        HEADER,
        ph,
        nym,
        context,
        3,
        shown,
        [],
        [0, 1],
        [],
    )


def test_one_pseudonym_per_context_unrelated_across_contexts(
    nym_holder: tuple[bytes, int, int],
) -> None:
    first, nym = _nym_proof(nym_holder, b"ph", CONTEXT)
    second, again = _nym_proof(nym_holder, b"ph-2", CONTEXT)
    other, elsewhere = _nym_proof(nym_holder, b"ph", b"verifier:shop")
    _verify(first, nym)
    _verify(second, again, b"ph-2")
    _verify(other, elsewhere, context=b"verifier:shop")
    assert nym == again == pseudonym.pseudonym_for(nym_holder[1], CONTEXT)
    assert elsewhere != nym and first != second


def test_a_pseudonym_proof_is_refused_for_anything_else(
    nym_holder: tuple[bytes, int, int],
) -> None:
    proof, nym = _nym_proof(nym_holder, b"ph", CONTEXT)
    someone_else = pseudonym.pseudonym_for(pseudonym.random_nym(), CONTEXT)
    attempts: list[Callable[[], None]] = [
        lambda: _verify(proof, nym, context=b"verifier:shop"),  # shown to another verifier
        lambda: _verify(proof, someone_else),  # claiming another holder's pseudonym
        lambda: _verify(proof, nym, b"replayed ph"),  # replayed for another request
        lambda: _verify(proof, nym, shown=(MESSAGES[0], b"purpose:marketing")),
        lambda: _verify(_flip(proof, 200), nym),
        lambda: _verify(proof, _flip(nym, 47)),
        lambda: _verify(proof[:-32], nym),
    ]
    for attempt in attempts:
        with pytest.raises(BbsVerificationError):
            attempt()


def test_a_core_proof_is_not_a_pseudonym_proof() -> None:
    signature = bbs.sign(SK, PK, HEADER, MESSAGES)
    proof = bbs.proof_gen(PK, signature, HEADER, b"ph", MESSAGES, [0, 1])
    nym = pseudonym.pseudonym_for(7, CONTEXT)
    with pytest.raises(BbsVerificationError):
        pseudonym.proof_verify_with_nym(
            PK, proof, HEADER, b"ph", nym, CONTEXT, 1, MESSAGES[:2], [], [0, 1], []
        )


def test_pseudonym_signing_needs_a_commitment_and_bad_indexes_are_refused(
    nym_holder: tuple[bytes, int, int],
) -> None:
    with pytest.raises(BbsVerificationError):
        pseudonym.blind_sign_with_nym(SK, PK, b"", HEADER, MESSAGES)
    signature, nym_secret, prover_blind = nym_holder
    with pytest.raises(MalformedInput):  # the nym_secret is not a committed message to show
        pseudonym.proof_gen_with_nym(
            PK,
            signature,
            HEADER,
            b"",
            nym_secret,
            CONTEXT,
            MESSAGES,
            [b"holder secret"],
            [],
            [1],
            prover_blind,
        )
