"""ProofGen and ProofVerify: zero-knowledge proofs of a BBS signature with selective disclosure.

The prover shows a randomised signature (Abar, Bbar, D) and Schnorr-style responses for the
signature's e, the blinding factors and each undisclosed message; the verifier recomputes the
commitments T1, T2 and checks the Fiat-Shamir challenge, then one pairing equation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from py_arkworks_bls12381 import GT, G1Point

from accord.crypto.bbs.core import calculate_domain, core_verify, signature_base
from accord.crypto.bbs.encoding import (
    Proof,
    Signature,
    i2osp8,
    octets_to_proof,
    octets_to_pubkey,
    octets_to_signature,
    scalar_to_octets,
    to_scalar,
    undisclosed_count,
)
from accord.crypto.bbs.generators import create_generators
from accord.crypto.bbs.hashing import hash_to_scalar, messages_to_scalars
from accord.crypto.bbs.randomness import RandomScalars, calculate_random_scalars
from accord.crypto.bbs.suite import API_ID, MAX_MESSAGES, R, bp2, p1
from accord.crypto.errors import BbsVerificationError, MalformedInput


@dataclass(frozen=True)
class ProofInit:
    """What the challenge is computed over, on both the prover's and the verifier's side."""

    abar: G1Point
    bbar: G1Point
    d: G1Point
    t1: G1Point
    t2: G1Point
    domain: int


def _msm(points: Sequence[G1Point], scalars: Sequence[int]) -> G1Point:
    return G1Point.multiexp_unchecked(list(points), [to_scalar(s) for s in scalars])


def _ascending(indexes: Sequence[int], length: int) -> bool:
    return all(0 <= i < length for i in indexes) and all(a < b for a, b in pairwise(indexes))


def proof_init(
    pk: bytes,
    signature: Signature,
    generators: Sequence[G1Point],
    random_scalars: Sequence[int],
    header: bytes,
    msg_scalars: Sequence[int],
    undisclosed_indexes: Sequence[int],
    api_id: bytes = API_ID,
) -> ProofInit:
    count = len(msg_scalars)
    if len(generators) != count + 1 or len(random_scalars) != len(undisclosed_indexes) + 5:
        raise MalformedInput("ProofInit: generators or random scalars of the wrong count")
    if not _ascending(undisclosed_indexes, count):
        raise MalformedInput("ProofInit: undisclosed indexes out of range or out of order")
    r1, r2, e_tilde, r1_tilde, r3_tilde, *m_tildes = random_scalars
    h_points = generators[1:]
    domain = calculate_domain(pk, generators, header, api_id)
    b = signature_base(domain, generators, msg_scalars)
    d = b * to_scalar(r2)
    abar = signature.a * to_scalar(r1 * r2)
    bbar = _msm([d, abar], [r1, -signature.e])
    t1 = _msm([abar, d], [e_tilde, r1_tilde])
    t2 = _msm([d, *(h_points[j] for j in undisclosed_indexes)], [r3_tilde, *m_tildes])
    return ProofInit(abar, bbar, d, t1, t2, domain)


def proof_challenge(
    init: ProofInit,
    disclosed_scalars: Sequence[int],
    disclosed_indexes: Sequence[int],
    ph: bytes,
    api_id: bytes = API_ID,
) -> int:
    """The Fiat-Shamir challenge over R, (i, msg_i)*, Abar, Bbar, D, T1, T2, domain and ph."""
    if len(disclosed_scalars) != len(disclosed_indexes):
        raise BbsVerificationError("one disclosed message is needed per disclosed index")
    parts = [i2osp8(len(disclosed_indexes))]
    for i, m in zip(disclosed_indexes, disclosed_scalars, strict=True):
        parts += [i2osp8(i), scalar_to_octets(m)]
    parts += [p.to_compressed_bytes() for p in (init.abar, init.bbar, init.d, init.t1, init.t2)]
    parts += [scalar_to_octets(init.domain), i2osp8(len(ph)), ph]
    return hash_to_scalar(b"".join(parts), api_id + b"H2S_")


def proof_finalize(
    init: ProofInit,
    challenge: int,
    e: int,
    random_scalars: Sequence[int],
    undisclosed_scalars: Sequence[int],
) -> Proof:
    if len(random_scalars) != len(undisclosed_scalars) + 5:
        raise MalformedInput("ProofFinalize: random scalars of the wrong count")
    r1, r2, e_tilde, r1_tilde, r3_tilde, *m_tildes = random_scalars
    r3 = pow(r2, -1, R)
    return Proof(
        init.abar,
        init.bbar,
        init.d,
        (e_tilde + e * challenge) % R,
        (r1_tilde - r1 * challenge) % R,
        (r3_tilde - r3 * challenge) % R,
        tuple(
            (m_tilde + m * challenge) % R
            for m_tilde, m in zip(m_tildes, undisclosed_scalars, strict=True)
        ),
        challenge,
    )


def proof_verify_init(
    pk: bytes,
    proof: Proof,
    generators: Sequence[G1Point],
    header: bytes,
    disclosed_scalars: Sequence[int],
    disclosed_indexes: Sequence[int],
    api_id: bytes = API_ID,
) -> ProofInit:
    count = len(disclosed_indexes) + len(proof.m_hats)
    if not _ascending(disclosed_indexes, count):
        raise BbsVerificationError("disclosed indexes out of range or not strictly ascending")
    if len(disclosed_scalars) != len(disclosed_indexes):
        raise BbsVerificationError("one disclosed message is needed per disclosed index")
    if len(generators) != count + 1:
        raise BbsVerificationError(f"{count} signed messages need {count + 1} generators")
    q1, *h_points = generators
    disclosed = set(disclosed_indexes)
    undisclosed = [j for j in range(count) if j not in disclosed]
    domain = calculate_domain(pk, generators, header, api_id)
    c = proof.challenge
    t1 = _msm([proof.bbar, proof.abar, proof.d], [c, proof.e_hat, proof.r1_hat])
    # T2 = Bv * c + D * r3^ + sum H_j * m^_j, with Bv = P1 + Q_1 * domain + sum H_i * msg_i,
    # folded into one multi-scalar multiplication.
    t2 = _msm(
        [
            p1(),
            q1,
            *(h_points[i] for i in disclosed_indexes),
            proof.d,
            *(h_points[j] for j in undisclosed),
        ],
        [c, domain * c, *(m * c for m in disclosed_scalars), proof.r3_hat, *proof.m_hats],
    )
    return ProofInit(proof.abar, proof.bbar, proof.d, t1, t2, domain)


def core_proof_gen(
    pk: bytes,
    signature: bytes,
    generators: Sequence[G1Point],
    header: bytes,
    ph: bytes,
    msg_scalars: Sequence[int],
    disclosed_indexes: Sequence[int],
    api_id: bytes = API_ID,
    random_scalars: RandomScalars = calculate_random_scalars,
) -> bytes:
    count = len(msg_scalars)
    if not _ascending(disclosed_indexes, count):
        raise MalformedInput("disclosed indexes must be strictly ascending and below the count")
    # The draft recommends it: a proof of a signature that does not verify would not either.
    core_verify(pk, signature, generators, header, msg_scalars, api_id)
    sig = octets_to_signature(signature)
    disclosed = set(disclosed_indexes)
    undisclosed = [j for j in range(count) if j not in disclosed]
    scalars = [s % R for s in random_scalars(len(undisclosed) + 5)]
    if scalars[1] == 0:  # r2 is inverted; probability ~2^-255
        raise MalformedInput("ProofGen drew a zero blinding factor")
    init = proof_init(pk, sig, generators, scalars, header, msg_scalars, undisclosed, api_id)
    challenge = proof_challenge(
        init, [msg_scalars[i] for i in disclosed_indexes], disclosed_indexes, ph, api_id
    )
    undisclosed_scalars = [msg_scalars[j] for j in undisclosed]
    return proof_finalize(init, challenge, sig.e, scalars, undisclosed_scalars).to_octets()


def core_proof_verify(
    pk: bytes,
    proof: bytes,
    generators: Sequence[G1Point],
    header: bytes,
    ph: bytes,
    disclosed_scalars: Sequence[int],
    disclosed_indexes: Sequence[int],
    api_id: bytes = API_ID,
) -> None:
    parsed = octets_to_proof(proof)
    w = octets_to_pubkey(pk)
    init = proof_verify_init(
        pk, parsed, generators, header, disclosed_scalars, disclosed_indexes, api_id
    )
    if proof_challenge(init, disclosed_scalars, disclosed_indexes, ph, api_id) != (
        parsed.challenge
    ):
        raise BbsVerificationError("the BBS proof's challenge does not match")
    # h(Abar, W) * h(Bbar, -BP2) == 1
    if not GT.pairing_check([parsed.abar, parsed.bbar], [w, -bp2()]):
        raise BbsVerificationError("the BBS proof does not verify")


def proof_gen(
    pk: bytes,
    signature: bytes,
    header: bytes = b"",
    ph: bytes = b"",
    messages: Sequence[bytes] = (),
    disclosed_indexes: Sequence[int] = (),
    *,
    random_scalars: RandomScalars = calculate_random_scalars,
) -> bytes:
    """A fresh, unlinkable proof of ``signature`` disclosing the messages at ``disclosed_indexes``.

    ``messages`` are all the signed messages, in order; ``ph`` (the presentation header) is
    bound to this proof only. ``random_scalars`` is for test vectors; leave it alone otherwise.
    """
    if len(messages) > MAX_MESSAGES:
        raise MalformedInput(f"at most {MAX_MESSAGES} messages are signed together")
    return core_proof_gen(
        pk,
        signature,
        create_generators(len(messages) + 1),
        header,
        ph,
        messages_to_scalars(messages),
        disclosed_indexes,
        random_scalars=random_scalars,
    )


def proof_verify(
    pk: bytes,
    proof: bytes,
    header: bytes = b"",
    ph: bytes = b"",
    disclosed_messages: Sequence[bytes] = (),
    disclosed_indexes: Sequence[int] = (),
) -> None:
    """Raise :class:`BbsVerificationError` unless ``proof`` shows a signature by ``pk`` over
    ``header`` and messages that include ``disclosed_messages`` at ``disclosed_indexes``."""
    total = undisclosed_count(len(proof)) + len(disclosed_indexes)
    if total > MAX_MESSAGES:
        raise BbsVerificationError(f"a proof over more than {MAX_MESSAGES} messages is refused")
    core_proof_verify(
        pk,
        proof,
        create_generators(total + 1),
        header,
        ph,
        messages_to_scalars(disclosed_messages),
        disclosed_indexes,
    )
