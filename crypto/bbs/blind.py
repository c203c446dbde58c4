"""Blind BBS signatures (draft-kalos-bbs-blind-signatures, BLS12-381-SHA-256).

The prover commits to messages the signer never sees (plus a secret blinding scalar) and proves
the commitment well formed; the signer checks that proof and signs its own messages together
with the commitment. The result is an ordinary BBS signature over the combined list

    messages || (secret_prover_blind,) || committed_messages

under the generators ``create_generators(L + 1, api_id) || create_generators(M + 1,
"BLIND_" || api_id)``, so proofs are core ProofGen/ProofVerify over that list. Without a
commitment the blind scalar is 0 (as in the draft's fixtures). Signing and verification raise
:class:`BbsVerificationError` on untrusted input; the prover's own mistakes raise
:class:`MalformedInput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from py_arkworks_bls12381 import G1Point

from accord.crypto.bbs.core import calculate_domain, core_verify
from accord.crypto.bbs.encoding import (
    Signature,
    i2osp8,
    octets_to_point_g1,
    octets_to_scalar,
    scalar_to_octets,
    to_scalar,
    undisclosed_count,
)
from accord.crypto.bbs.generators import create_generators
from accord.crypto.bbs.hashing import hash_to_scalar, messages_to_scalars
from accord.crypto.bbs.keys import secret_key_scalar, sk_to_pk
from accord.crypto.bbs.proof import core_proof_gen, core_proof_verify
from accord.crypto.bbs.randomness import RandomScalars, calculate_random_scalars
from accord.crypto.bbs.suite import (
    CIPHERSUITE_ID,
    MAX_MESSAGES,
    POINT_LENGTH,
    SCALAR_LENGTH,
    R,
    p1,
)
from accord.crypto.errors import BbsVerificationError, MalformedInput

BLIND_API_ID = CIPHERSUITE_ID + b"BLIND_H2G_HM2S_"
# A commitment with proof: C, s^, (m^_1, ..., m^_M), challenge.
COMMITMENT_MIN_LENGTH = POINT_LENGTH + 2 * SCALAR_LENGTH


def blind_generators(count: int, api_id: bytes) -> list[G1Point]:
    """Q_2, J_1, ..., J_(count-1): the generators committed messages are signed against."""
    return create_generators(count, b"BLIND_" + api_id)


def _msm(points: Sequence[G1Point], scalars: Sequence[int]) -> G1Point:
    return G1Point.multiexp_unchecked(list(points), [to_scalar(s) for s in scalars])


def _blind_challenge(
    c: G1Point, cbar: G1Point, generators: Sequence[G1Point], api_id: bytes
) -> int:
    parts = [i2osp8(len(generators) - 1)]
    parts += [g.to_compressed_bytes() for g in generators]
    parts += [c.to_compressed_bytes(), cbar.to_compressed_bytes()]
    return hash_to_scalar(b"".join(parts), api_id + b"H2S_")


def core_commit(
    msg_scalars: Sequence[int],
    generators: Sequence[G1Point],
    api_id: bytes,
    random_scalars: RandomScalars,
) -> tuple[bytes, int]:
    """(commitment_with_proof, secret_prover_blind) for scalars over (Q_2, J_1, ..., J_M)."""
    count = len(msg_scalars)
    if len(generators) != count + 1:
        raise MalformedInput(f"{count} committed messages need {count + 1} blind generators")
    blind, s_tilde, *m_tildes = (s % R for s in random_scalars(count + 2))
    c = _msm(generators, [blind, *msg_scalars])
    cbar = _msm(generators, [s_tilde, *m_tildes])
    challenge = _blind_challenge(c, cbar, generators, api_id)
    s_hat = (s_tilde + blind * challenge) % R
    m_hats = [(t + m * challenge) % R for t, m in zip(m_tildes, msg_scalars, strict=True)]
    octets = c.to_compressed_bytes() + b"".join(
        scalar_to_octets(s) for s in (s_hat, *m_hats, challenge)
    )
    return octets, blind


def commit(
    committed_messages: Sequence[bytes] = (),
    api_id: bytes = BLIND_API_ID,
    *,
    random_scalars: RandomScalars = calculate_random_scalars,
) -> tuple[bytes, int]:
    """The prover's commitment to ``committed_messages`` with its proof, and the secret blind.

    Keep the blind: it is a signed message the prover needs to verify and to prove later.
    """
    if len(committed_messages) > MAX_MESSAGES:
        raise MalformedInput(f"at most {MAX_MESSAGES} messages can be committed together")
    scalars = messages_to_scalars(committed_messages, api_id)
    return core_commit(scalars, blind_generators(len(scalars) + 1, api_id), api_id, random_scalars)


def committed_count(commitment_with_proof: bytes) -> int:
    """M, the number of messages a commitment with proof covers (0 for no commitment)."""
    if not commitment_with_proof:
        return 0
    extra = len(commitment_with_proof) - COMMITMENT_MIN_LENGTH
    if extra < 0 or extra % SCALAR_LENGTH:
        raise BbsVerificationError(f"a commitment cannot be {len(commitment_with_proof)} bytes")
    count = extra // SCALAR_LENGTH
    if count > MAX_MESSAGES:
        raise BbsVerificationError(f"a commitment to more than {MAX_MESSAGES} is refused")
    return count


def verify_commitment(
    commitment_with_proof: bytes, generators: Sequence[G1Point], api_id: bytes
) -> G1Point:
    """The commitment C once its proof verifies (the identity for no commitment)."""
    if not commitment_with_proof:
        return G1Point.identity()
    count = committed_count(commitment_with_proof)
    if len(generators) != count + 1:
        raise BbsVerificationError(f"a commitment to {count} messages needs {count + 1} generators")
    c = octets_to_point_g1(commitment_with_proof[:POINT_LENGTH], "the commitment")
    rest = commitment_with_proof[POINT_LENGTH:]
    s_hat, *m_hats, challenge = (
        octets_to_scalar(rest[i : i + SCALAR_LENGTH], f"commitment scalar {i // SCALAR_LENGTH}")
        for i in range(0, len(rest), SCALAR_LENGTH)
    )
    cbar = _msm([*generators, c], [s_hat, *m_hats, -challenge])
    if _blind_challenge(c, cbar, generators, api_id) != challenge:
        raise BbsVerificationError("the commitment's proof does not verify")
    return c


def finalize_blind_sign(
    sk: bytes,
    pk: bytes,
    base: G1Point,
    generators: Sequence[G1Point],
    blind_gens: Sequence[G1Point],
    header: bytes,
    api_id: bytes,
) -> bytes:
    """Sign ``base`` (P1 + H_i * msg_i + commitment, without the domain term yet)."""
    sk_value = secret_key_scalar(sk)
    domain = calculate_domain(pk, [*generators, *blind_gens], header, api_id)
    b = base + generators[0] * to_scalar(domain)
    if b == G1Point.identity():
        raise BbsVerificationError("the signature base is the identity")
    e = hash_to_scalar(scalar_to_octets(sk_value) + b.to_compressed_bytes(), api_id + b"H2S_")
    denominator = (sk_value + e) % R
    if denominator == 0:  # probability ~2^-255
        raise MalformedInput("this secret key cannot sign these messages")
    return Signature(b * to_scalar(pow(denominator, -1, R)), e).to_octets()


@dataclass(frozen=True)
class SigningInput:
    """What the signer has checked: its generators, the commitment and its message scalars."""

    generators: list[G1Point]
    blind_gens: list[G1Point]
    commitment: G1Point
    base: G1Point  # P1 + H_1 * msg_1 + ... + H_L * msg_L + commitment


def signing_input(
    pk: bytes,
    sk: bytes,
    commitment_with_proof: bytes,
    messages: Sequence[bytes],
    api_id: bytes,
) -> SigningInput:
    if len(messages) > MAX_MESSAGES:
        raise MalformedInput(f"at most {MAX_MESSAGES} messages can be signed together")
    if sk_to_pk(sk) != pk:
        raise MalformedInput("the public key does not belong to this secret key")
    count = committed_count(commitment_with_proof)
    generators = create_generators(len(messages) + 1, api_id)
    blind_gens = blind_generators(count + 1, api_id)
    commitment = verify_commitment(commitment_with_proof, blind_gens, api_id)
    scalars = messages_to_scalars(messages, api_id)
    base = p1() + commitment
    if scalars:
        base = base + _msm(generators[1:], scalars)
    return SigningInput(generators, blind_gens, commitment, base)


def blind_sign(
    sk: bytes,
    pk: bytes,
    commitment_with_proof: bytes = b"",
    header: bytes = b"",
    messages: Sequence[bytes] = (),
    api_id: bytes = BLIND_API_ID,
) -> bytes:
    """The signer's BlindSign: its ``messages`` plus whatever the commitment hides."""
    given = signing_input(pk, sk, commitment_with_proof, messages, api_id)
    return finalize_blind_sign(
        sk, pk, given.base, given.generators, given.blind_gens, header, api_id
    )


def prepare_parameters(
    messages: Sequence[bytes],
    committed_messages: Sequence[bytes],
    generator_count: int,
    blind_generator_count: int,
    secret_prover_blind: int | None,
    api_id: bytes,
) -> tuple[list[int], list[G1Point]]:
    """The combined message scalars and generators a blind signature is an ordinary one over."""
    scalars = messages_to_scalars(messages, api_id)
    if secret_prover_blind is not None:
        scalars.append(secret_prover_blind % R)
    scalars += messages_to_scalars(committed_messages, api_id)
    generators = create_generators(generator_count, api_id)
    return scalars, generators + blind_generators(blind_generator_count, api_id)


def combined_indexes(
    count: int, disclosed_indexes: Sequence[int], disclosed_committed_indexes: Sequence[int]
) -> list[int]:
    """Signer-message indexes, then committed ones shifted past the L messages and the blind."""
    return [*disclosed_indexes, *(count + 1 + j for j in disclosed_committed_indexes)]


def _check_indexes(indexes: Sequence[int], count: int, what: str) -> None:
    if len(indexes) > count or any(not 0 <= i < count for i in indexes):
        raise MalformedInput(f"{what} out of range")


def blind_verify(
    pk: bytes,
    signature: bytes,
    header: bytes = b"",
    messages: Sequence[bytes] = (),
    committed_messages: Sequence[bytes] = (),
    secret_prover_blind: int = 0,
    api_id: bytes = BLIND_API_ID,
) -> None:
    """The prover's check of a blind signature; raises :class:`BbsVerificationError`."""
    if len(messages) + len(committed_messages) >= MAX_MESSAGES:
        raise BbsVerificationError(f"at most {MAX_MESSAGES} messages are signed together")
    scalars, generators = prepare_parameters(
        messages,
        committed_messages,
        len(messages) + 1,
        len(committed_messages) + 1,
        secret_prover_blind,
        api_id,
    )
    core_verify(pk, signature, generators, header, scalars, api_id)


def blind_proof_gen(
    pk: bytes,
    signature: bytes,
    header: bytes = b"",
    ph: bytes = b"",
    messages: Sequence[bytes] = (),
    committed_messages: Sequence[bytes] = (),
    disclosed_indexes: Sequence[int] = (),
    disclosed_committed_indexes: Sequence[int] = (),
    secret_prover_blind: int = 0,
    api_id: bytes = BLIND_API_ID,
    *,
    random_scalars: RandomScalars = calculate_random_scalars,
) -> bytes:
    """A core BBS proof of a blind signature; the blind itself is never disclosed."""
    count, committed = len(messages), len(committed_messages)
    if count + committed >= MAX_MESSAGES:
        raise MalformedInput(f"at most {MAX_MESSAGES} messages are signed together")
    _check_indexes(disclosed_indexes, count, "disclosed indexes")
    _check_indexes(disclosed_committed_indexes, committed, "disclosed committed indexes")
    scalars, generators = prepare_parameters(
        messages, committed_messages, count + 1, committed + 1, secret_prover_blind, api_id
    )
    indexes = combined_indexes(count, disclosed_indexes, disclosed_committed_indexes)
    return core_proof_gen(
        pk, signature, generators, header, ph, scalars, indexes, api_id, random_scalars
    )


def blind_proof_verify(
    pk: bytes,
    proof: bytes,
    header: bytes,
    ph: bytes,
    signer_message_count: int,
    disclosed_messages: Sequence[bytes] = (),
    disclosed_committed_messages: Sequence[bytes] = (),
    disclosed_indexes: Sequence[int] = (),
    disclosed_committed_indexes: Sequence[int] = (),
    api_id: bytes = BLIND_API_ID,
) -> None:
    """Raise :class:`BbsVerificationError` unless ``proof`` shows a blind signature by ``pk``
    over ``signer_message_count`` signer messages (and any number of committed ones) that
    include the disclosed messages at their indexes."""
    total = undisclosed_count(len(proof)) + len(disclosed_indexes)
    total += len(disclosed_committed_indexes)
    committed = total - signer_message_count - 1  # the blind is one signed scalar
    if signer_message_count < 0 or committed < 0 or total > MAX_MESSAGES:
        raise BbsVerificationError("the proof's length does not fit the message counts")
    for indexes, bound in (
        (disclosed_indexes, signer_message_count),
        (disclosed_committed_indexes, committed),
    ):
        if any(not 0 <= i < bound for i in indexes):
            raise BbsVerificationError("a disclosed index is out of range")
    scalars, generators = prepare_parameters(
        disclosed_messages,
        disclosed_committed_messages,
        signer_message_count + 1,
        committed + 1,
        None,
        api_id,
    )
    indexes = combined_indexes(signer_message_count, disclosed_indexes, disclosed_committed_indexes)
    core_proof_verify(pk, proof, generators, header, ph, scalars, indexes, api_id)
