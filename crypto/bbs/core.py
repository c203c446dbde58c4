"""Sign and Verify: the BBS signature itself (CoreSign, CoreVerify and their interface)."""

from __future__ import annotations

from collections.abc import Sequence

from py_arkworks_bls12381 import GT, G1Point

from accord.crypto.bbs.encoding import (
    Signature,
    i2osp8,
    octets_to_pubkey,
    octets_to_signature,
    scalar_to_octets,
    to_scalar,
)
from accord.crypto.bbs.generators import create_generators
from accord.crypto.bbs.hashing import hash_to_scalar, messages_to_scalars
from accord.crypto.bbs.keys import secret_key_scalar, sk_to_pk
from accord.crypto.bbs.suite import API_ID, MAX_MESSAGES, R, bp2, p1
from accord.crypto.errors import BbsVerificationError, MalformedInput


def calculate_domain(
    pk: bytes, generators: Sequence[G1Point], header: bytes, api_id: bytes = API_ID
) -> int:
    """The scalar that binds a signature to the key, the generators, the header and api_id."""
    q1, *h_points = generators
    dom_octs = (
        i2osp8(len(h_points)) + b"".join(p.to_compressed_bytes() for p in (q1, *h_points)) + api_id
    )
    dom_input = pk + dom_octs + i2osp8(len(header)) + header
    return hash_to_scalar(dom_input, api_id + b"H2S_")


def signature_base(
    domain: int, generators: Sequence[G1Point], msg_scalars: Sequence[int]
) -> G1Point:
    """B = P1 + Q_1 * domain + H_1 * msg_1 + ... + H_L * msg_L."""
    scalars = [to_scalar(domain), *(to_scalar(m) for m in msg_scalars)]
    return p1() + G1Point.multiexp_unchecked(list(generators), scalars)


def _check_generators(generators: Sequence[G1Point], count: int) -> None:
    if len(generators) != count + 1:
        raise MalformedInput(f"{count} messages need {count + 1} generators")


def core_sign(
    sk: bytes,
    pk: bytes,
    generators: Sequence[G1Point],
    header: bytes,
    msg_scalars: Sequence[int],
    api_id: bytes = API_ID,
) -> bytes:
    sk_value = secret_key_scalar(sk)
    _check_generators(generators, len(msg_scalars))
    domain = calculate_domain(pk, generators, header, api_id)
    e_input = b"".join(scalar_to_octets(s) for s in (sk_value, *msg_scalars, domain))
    e = hash_to_scalar(e_input, api_id + b"H2S_")
    denominator = (sk_value + e) % R
    if denominator == 0:  # probability ~2^-255; A would be the identity
        raise MalformedInput("this secret key cannot sign these messages")
    a = signature_base(domain, generators, msg_scalars) * to_scalar(pow(denominator, -1, R))
    return Signature(a, e).to_octets()


def core_verify(
    pk: bytes,
    signature: bytes,
    generators: Sequence[G1Point],
    header: bytes,
    msg_scalars: Sequence[int],
    api_id: bytes = API_ID,
) -> None:
    sig = octets_to_signature(signature)
    w = octets_to_pubkey(pk)
    if len(generators) != len(msg_scalars) + 1:
        raise BbsVerificationError(f"{len(msg_scalars)} messages need one more generator")
    domain = calculate_domain(pk, generators, header, api_id)
    b = signature_base(domain, generators, msg_scalars)
    # h(A, W) * h(A * e - B, BP2) == 1
    if not GT.pairing_check([sig.a, sig.a * to_scalar(sig.e) - b], [w, bp2()]):
        raise BbsVerificationError("the BBS signature does not verify")


def sign(sk: bytes, pk: bytes, header: bytes = b"", messages: Sequence[bytes] = ()) -> bytes:
    """A deterministic BBS signature (80 bytes) over ``header`` and every message, in order."""
    if len(messages) > MAX_MESSAGES:
        raise MalformedInput(f"at most {MAX_MESSAGES} messages can be signed together")
    if sk_to_pk(sk) != pk:
        raise MalformedInput("the public key does not belong to this secret key")
    return core_sign(
        sk, pk, create_generators(len(messages) + 1), header, messages_to_scalars(messages)
    )


def verify(
    pk: bytes, signature: bytes, header: bytes = b"", messages: Sequence[bytes] = ()
) -> None:
    """Raise :class:`BbsVerificationError` unless ``signature`` signs these messages, in order."""
    if len(messages) > MAX_MESSAGES:
        raise BbsVerificationError(f"at most {MAX_MESSAGES} messages are signed together")
    core_verify(
        pk, signature, create_generators(len(messages) + 1), header, messages_to_scalars(messages)
    )
