"""A node's exchange keys bound to its certificate: the statement its TLS key signs.

The coordinator only relays a node's X25519 key (pairwise mask seeds, sealed row keys) and its
Ed25519 identity key. So that it cannot swap them, the node signs both with the private key of
the certificate the network's CA issued to it, and every party that uses a key checks the
statement against that certificate: chained to the CA it holds, issued to the channel and role
the entry names. The signed message is domain-separated and names the purpose, the network
(its CA certificate's SHA-256), the channel, the role and both keys, so a statement is good for
this one binding only.

ECDSA P-256 with SHA-256 (the certificates' key type), deterministic (RFC 6979): the same keys
give the same statement, so re-registering unchanged keys changes nothing. Pure.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.pki import load_certificate

DOMAIN = b"accord.v1.ExchangeKeyStatement\n"
PURPOSE = b"the node's key-agreement and identity keys for pairwise masks and sealed row keys"
MAX_STATEMENT_BYTES = 80  # a DER ECDSA P-256 signature is at most 72 bytes


def _ca_id(ca_pem: bytes) -> bytes:
    return hashlib.sha256(
        load_certificate(ca_pem).public_bytes(serialization.Encoding.DER)
    ).digest()


def statement_message(
    *, ca_pem: bytes, channel: str, role: str, identity_key: bytes, kx_key: bytes
) -> bytes:
    """The bytes a node's certificate key signs; each field length-prefixed (no ambiguity)."""
    fields = (PURPOSE, _ca_id(ca_pem), channel.encode(), role.encode(), identity_key, kx_key)
    return DOMAIN + b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def _ecdsa() -> ec.ECDSA:
    return ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def sign_statement(
    key_pem: bytes,
    *,
    ca_pem: bytes,
    channel: str,
    role: str,
    identity_key: bytes,
    kx_key: bytes,
) -> bytes:
    """The statement: the certificate key's signature over :func:`statement_message`."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise MalformedInput("the certificate key is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise MalformedInput("the certificate key is not an EC key")
    message = statement_message(
        ca_pem=ca_pem, channel=channel, role=role, identity_key=identity_key, kx_key=kx_key
    )
    return key.sign(message, _ecdsa())


def check_statement(
    statement: bytes,
    *,
    certificate_pem: bytes,
    ca_pem: bytes,
    channel: str,
    role: str,
    identity_key: bytes,
    kx_key: bytes,
) -> None:
    """Raise :class:`VerificationError` unless ``certificate_pem`` was issued by the network's
    CA to ``channel`` in ``role`` and its key signed this binding of ``identity_key`` and
    ``kx_key``.

    The certificate's validity period is not checked here: a stored registry must verify the
    same way later, and every live connection to the node checks its certificate's time in TLS.
    """
    if not statement or len(statement) > MAX_STATEMENT_BYTES:
        raise VerificationError("no exchange-key statement signed by the node's certificate")
    cert, ca = load_certificate(certificate_pem), load_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise VerificationError("the certificate was not issued by this network's CA") from exc
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    roles = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if [a.value for a in names] != [channel] or [a.value for a in roles] != [role]:
        raise VerificationError(f"the certificate is not issued to {channel!r} as {role!r}")
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise VerificationError("the certificate's key is not a P-256 key")
    message = statement_message(
        ca_pem=ca_pem, channel=channel, role=role, identity_key=identity_key, kx_key=kx_key
    )
    try:
        public_key.verify(statement, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError(
            f"the exchange keys of {channel!r} are not signed by its certificate's key"
        ) from exc
