"""Seal a small secret to one node's X25519 key with HPKE (RFC 9180, base mode).

Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, from ``cryptography``.
Every seal uses a fresh ephemeral key, so sealing the same row key twice gives unrelated
ciphertexts: two credentials for one customer share no byte string a third party could link.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import KeyAgreementKey, check_x25519_public

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
ENC_BYTES = 32
TAG_BYTES = 16


def seal(recipient_public: bytes, secret: bytes, *, info: bytes) -> bytes:
    """``enc || ciphertext`` that only the holder of ``recipient_public``'s key can open."""
    check_x25519_public(recipient_public)
    return _SUITE.encrypt(secret, X25519PublicKey.from_public_bytes(recipient_public), info=info)


def open_sealed(key: KeyAgreementKey, sealed: bytes, *, info: bytes) -> bytes:
    if len(sealed) < ENC_BYTES + TAG_BYTES:
        raise MalformedInput("a sealed value is at least 48 bytes")
    try:
        return _SUITE.decrypt(sealed, key.private_key, info=info)
    except Exception as exc:  # any failure is one failure to the outside
        raise VerificationError("the sealed value does not open with this node's key") from exc
