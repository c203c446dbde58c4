"""Per-verifier pseudonyms over blind BBS (draft-irtf-cfrg-bbs-per-verifier-linkability).

The holder commits to a secret ``prover_nym`` (with any other committed messages); the signer
adds its own random ``signer_nym_entropy`` at the same generator while blind-signing, so the
signed ``nym_secret = prover_nym + signer_nym_entropy`` is known to the holder alone and chosen
by neither party alone. At each presentation the holder shows, for a verifier's ``context_id``,

    Pseudonym = hash_to_curve_g1(context_id) * nym_secret

and proves in the same Fiat-Shamir proof that it is the signed, undisclosed ``nym_secret``. One
holder's pseudonym is the same at every use with one context (so that verifier can link them)
and unrelated across contexts. The signed message list is that of :mod:`.blind` with
``nym_secret`` appended after the committed messages; the ``nym_secret`` is never disclosed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from py_arkworks_bls12381 import GT, G1Point

from accord.crypto.bbs.blind import blind_generators as _blind_generators
from accord.crypto.bbs.blind import (
    combined_indexes,
    core_commit,
    finalize_blind_sign,
    prepare_parameters,
    signing_input,
)
from accord.crypto.bbs.core import core_verify
from accord.crypto.bbs.encoding import (
    i2osp8,
    octets_to_point_g1,
    octets_to_proof,
    octets_to_pubkey,
    octets_to_signature,
    scalar_to_octets,
    to_scalar,
    undisclosed_count,
)
from accord.crypto.bbs.hashing import hash_to_curve_g1, hash_to_scalar, messages_to_scalars
from accord.crypto.bbs.proof import ProofInit, proof_finalize, proof_init, proof_verify_init
from accord.crypto.bbs.randomness import RandomScalars, calculate_random_scalars
from accord.crypto.bbs.suite import CIPHERSUITE_ID, EXPAND_LENGTH, MAX_MESSAGES, R, bp2
from accord.crypto.errors import BbsVerificationError, MalformedInput

PSEUDONYM_API_ID = CIPHERSUITE_ID + b"H2G_HM2S_PSEUDONYM_"


def random_nym() -> int:
    """A fresh uniform scalar: a holder's ``prover_nym`` or a signer's ``signer_nym_entropy``."""
    return int.from_bytes(secrets.token_bytes(EXPAND_LENGTH), "big") % R


def nym_commit(
    committed_messages: Sequence[bytes],
    prover_nym: int,
    api_id: bytes = PSEUDONYM_API_ID,
    *,
    random_scalars: RandomScalars = calculate_random_scalars,
) -> tuple[bytes, int]:
    """The holder's commitment to ``committed_messages`` and ``prover_nym``, and its blind."""
    if len(committed_messages) >= MAX_MESSAGES:
        raise MalformedInput(f"at most {MAX_MESSAGES} messages can be committed together")
    scalars = [*messages_to_scalars(committed_messages, api_id), prover_nym % R]
    generators = _blind_generators(len(scalars) + 1, api_id)
    return core_commit(scalars, generators, api_id, random_scalars)


def blind_sign_with_nym(
    sk: bytes,
    pk: bytes,
    commitment_with_proof: bytes,
    header: bytes = b"",
    messages: Sequence[bytes] = (),
    signer_nym_entropy: int | None = None,
    api_id: bytes = PSEUDONYM_API_ID,
) -> tuple[bytes, int]:
    """The signer's BlindSignWithNym: (signature, signer_nym_entropy), both for the holder.

    ``signer_nym_entropy`` is drawn fresh unless given (test vectors give it).
    """
    if not commitment_with_proof:
        raise BbsVerificationError("a pseudonym signature needs the holder's nym commitment")
    entropy = random_nym() if signer_nym_entropy is None else signer_nym_entropy % R
    given = signing_input(pk, sk, commitment_with_proof, messages, api_id)
    base = given.base + given.blind_gens[-1] * to_scalar(entropy)
    signature = finalize_blind_sign(
        sk, pk, base, given.generators, given.blind_gens, header, api_id
    )
    return signature, entropy


def _signed_scalars(
    messages: Sequence[bytes],
    committed_messages: Sequence[bytes],
    secret_prover_blind: int,
    nym_secret: int,
    api_id: bytes,
) -> tuple[list[int], list[G1Point]]:
    if len(messages) + len(committed_messages) + 2 > MAX_MESSAGES:
        raise MalformedInput(f"at most {MAX_MESSAGES} messages are signed together")
    scalars, generators = prepare_parameters(
        messages,
        committed_messages,
        len(messages) + 1,
        len(committed_messages) + 2,
        secret_prover_blind,
        api_id,
    )
    return [*scalars, nym_secret % R], generators


def blind_verify_with_nym(
    pk: bytes,
    signature: bytes,
    header: bytes = b"",
    messages: Sequence[bytes] = (),
    committed_messages: Sequence[bytes] = (),
    prover_nym: int = 0,
    signer_nym_entropy: int = 0,
    secret_prover_blind: int = 0,
    api_id: bytes = PSEUDONYM_API_ID,
) -> int:
    """The holder's check of what the signer returned; the ``nym_secret`` it signed."""
    nym_secret = (prover_nym + signer_nym_entropy) % R
    scalars, generators = _signed_scalars(
        messages, committed_messages, secret_prover_blind, nym_secret, api_id
    )
    core_verify(pk, signature, generators, header, scalars, api_id)
    return nym_secret


def context_point(context_id: bytes, api_id: bytes = PSEUDONYM_API_ID) -> G1Point:
    """OP, the verifier context's base point."""
    return hash_to_curve_g1(context_id, api_id)


def pseudonym_for(nym_secret: int, context_id: bytes, api_id: bytes = PSEUDONYM_API_ID) -> bytes:
    """The holder's pseudonym for ``context_id`` (what a proof with that context shows)."""
    point = context_point(context_id, api_id) * to_scalar(nym_secret)
    if point == G1Point.identity():
        raise MalformedInput("this nym_secret gives no pseudonym")
    return bytes(point.to_compressed_bytes())


@dataclass(frozen=True)
class NymInit:
    pseudonym: G1Point
    op: G1Point
    u: G1Point  # Ut on the prover's side, Uv on the verifier's


def _nym_challenge(
    init: ProofInit,
    nym: NymInit,
    disclosed_indexes: Sequence[int],
    disclosed_scalars: Sequence[int],
    ph: bytes,
    api_id: bytes,
) -> int:
    """ProofWithNymChallengeCalculate: the core challenge's input with Pseudonym, OP and U
    placed between T2 and the domain."""
    parts = [i2osp8(len(disclosed_indexes))]
    for i, m in zip(disclosed_indexes, disclosed_scalars, strict=True):
        parts += [i2osp8(i), scalar_to_octets(m)]
    points = (init.abar, init.bbar, init.d, init.t1, init.t2, nym.pseudonym, nym.op, nym.u)
    parts += [p.to_compressed_bytes() for p in points]
    parts += [scalar_to_octets(init.domain), i2osp8(len(ph)), ph]
    return hash_to_scalar(b"".join(parts), api_id + b"H2S_")


def proof_gen_with_nym(
    pk: bytes,
    signature: bytes,
    header: bytes,
    ph: bytes,
    nym_secret: int,
    context_id: bytes,
    messages: Sequence[bytes] = (),
    committed_messages: Sequence[bytes] = (),
    disclosed_indexes: Sequence[int] = (),
    disclosed_committed_indexes: Sequence[int] = (),
    secret_prover_blind: int = 0,
    api_id: bytes = PSEUDONYM_API_ID,
    *,
    random_scalars: RandomScalars = calculate_random_scalars,
) -> tuple[bytes, bytes]:
    """(proof, pseudonym): a proof of the signature that also shows this context's pseudonym."""
    count, committed = len(messages), len(committed_messages)
    if any(not 0 <= i < count for i in disclosed_indexes) or any(
        not 0 <= j < committed for j in disclosed_committed_indexes
    ):
        raise MalformedInput("a disclosed index is out of range")
    scalars, generators = _signed_scalars(
        messages, committed_messages, secret_prover_blind, nym_secret, api_id
    )
    indexes = combined_indexes(count, disclosed_indexes, disclosed_committed_indexes)
    if any(b <= a for a, b in pairwise(indexes)):
        raise MalformedInput("disclosed indexes must be strictly ascending")
    core_verify(pk, signature, generators, header, scalars, api_id)
    disclosed = set(indexes)
    undisclosed = [j for j in range(len(scalars)) if j not in disclosed]
    randoms = [s % R for s in random_scalars(len(undisclosed) + 5)]
    if randoms[1] == 0:  # r2 is inverted; probability ~2^-255
        raise MalformedInput("ProofGen drew a zero blinding factor")
    sig = octets_to_signature(signature)
    init = proof_init(pk, sig, generators, randoms, header, scalars, undisclosed, api_id)
    op = context_point(context_id, api_id)
    nym = NymInit(op * to_scalar(nym_secret), op, op * to_scalar(randoms[-1]))
    if nym.pseudonym == G1Point.identity() or nym.u == G1Point.identity():
        raise MalformedInput("the pseudonym or its commitment is the identity")
    disclosed_scalars = [scalars[i] for i in indexes]
    challenge = _nym_challenge(init, nym, indexes, disclosed_scalars, ph, api_id)
    proof = proof_finalize(init, challenge, sig.e, randoms, [scalars[j] for j in undisclosed])
    return proof.to_octets(), bytes(nym.pseudonym.to_compressed_bytes())


def proof_verify_with_nym(
    pk: bytes,
    proof: bytes,
    header: bytes,
    ph: bytes,
    pseudonym: bytes,
    context_id: bytes,
    signer_message_count: int,
    disclosed_messages: Sequence[bytes] = (),
    disclosed_committed_messages: Sequence[bytes] = (),
    disclosed_indexes: Sequence[int] = (),
    disclosed_committed_indexes: Sequence[int] = (),
    api_id: bytes = PSEUDONYM_API_ID,
) -> None:
    """Raise :class:`BbsVerificationError` unless ``proof`` shows a signature by ``pk`` with
    these disclosed messages, made by the holder whose pseudonym for ``context_id`` is
    ``pseudonym``."""
    hidden = undisclosed_count(len(proof))
    if hidden < 1:
        raise BbsVerificationError("a pseudonym proof keeps at least the nym_secret hidden")
    total = hidden + len(disclosed_indexes) + len(disclosed_committed_indexes)
    # L signer messages, the blind, M committed messages, the nym_secret.
    committed = total - signer_message_count - 2
    if signer_message_count < 0 or committed < 0 or total > MAX_MESSAGES:
        raise BbsVerificationError("the proof's length does not fit the message counts")
    for indexes, bound in (
        (disclosed_indexes, signer_message_count),
        (disclosed_committed_indexes, committed),
    ):
        if any(not 0 <= i < bound for i in indexes):
            raise BbsVerificationError("a disclosed index is out of range")
    nym_point = octets_to_point_g1(pseudonym, "the pseudonym")
    parsed = octets_to_proof(proof)
    w = octets_to_pubkey(pk)
    scalars, generators = prepare_parameters(
        disclosed_messages,
        disclosed_committed_messages,
        signer_message_count + 1,
        committed + 2,
        None,
        api_id,
    )
    indexes = combined_indexes(signer_message_count, disclosed_indexes, disclosed_committed_indexes)
    init = proof_verify_init(pk, parsed, generators, header, scalars, indexes, api_id)
    op = context_point(context_id, api_id)
    # The nym_secret is the last signed message, so its response is the last m^.
    uv = G1Point.multiexp_unchecked(
        [op, nym_point], [to_scalar(parsed.m_hats[-1]), to_scalar(-parsed.challenge)]
    )
    if uv == G1Point.identity():
        raise BbsVerificationError("the pseudonym's commitment is the identity")
    nym = NymInit(nym_point, op, uv)
    if _nym_challenge(init, nym, indexes, scalars, ph, api_id) != parsed.challenge:
        raise BbsVerificationError("the pseudonym proof's challenge does not match")
    if not GT.pairing_check([parsed.abar, parsed.bbar], [w, -bp2()]):
        raise BbsVerificationError("the pseudonym proof does not verify")
