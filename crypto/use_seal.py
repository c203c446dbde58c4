"""Data-use entries that only the auditor and the customer can link.

A ``data.use`` entry must let the auditor check which consent covered each use, and let the
customer find their own uses, without giving anyone else a byte string that repeats across
uses of one customer (a stable commitment, a session id). So each entry carries:

- per use, a fresh random ``nonce`` and ``tag = HMAC(tag_key, nonce)``, where ``tag_key`` is
  derived from the customer's commitment salt and never appears on the ledger: the customer,
  holding their opening, recognises their tags; to anyone else a tag is a fresh random string;
- the fields the auditor's check needs (subject and consent commitments, the cited grant, the
  session), sealed with HPKE to the auditor's certificate key. Each seal uses a fresh ephemeral
  key, so two seals of the same fields share nothing.

The auditor's key is the P-256 key of a certificate the network's CA issued with the auditor
role (:func:`audit_recipient` checks both), so a node seals to the party the operator admitted
as auditor, not to a key anyone can hand it. Suite: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
ChaCha20-Poly1305 (RFC 9180, from ``cryptography``). The plaintext has a fixed size per use,
so its length tells nothing but the number of uses (which the tags already show).

Pure: bytes in, bytes out.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import struct
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.crypto.commitment import USE_TAG_DOMAIN as _TAG_DOMAIN
from accord.crypto.commitment import use_tag_key as use_tag_key
from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.pki import certificate_role, check_issued_by, load_certificate

_SUITE = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
AUDITOR_ROLE = "auditor"
NONCE_BYTES = 16
TAG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits: a false match is a 2**-128 event
COMMITMENT_BYTES = 32
SESSION_BYTES = 64
POINT_BYTES = 65  # an uncompressed SEC1 P-256 point
ENC_BYTES = 65
AEAD_TAG_BYTES = 16
_USE = struct.Struct(f">{COMMITMENT_BYTES}s{COMMITMENT_BYTES}sQ")


# --- the customer's tags -------------------------------------------------------------------


def use_tag(tag_key: bytes, nonce: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise MalformedInput(f"a use nonce is {NONCE_BYTES} bytes")
    return hmac.new(tag_key, _TAG_DOMAIN + nonce, sha256).digest()[:TAG_BYTES]


def new_use_tag(tag_key: bytes) -> tuple[bytes, bytes]:
    """A fresh ``(nonce, tag)`` for one use."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, use_tag(tag_key, nonce)


def tag_matches(tag_key: bytes, nonce: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(use_tag(tag_key, nonce), tag)


# --- what the auditor's check needs, sealed to the auditor ---------------------------------


@dataclass(frozen=True)
class AuditedUse:
    """One use as the auditor's check sees it: whose, under which consent, citing which grant."""

    subject: bytes
    consent: bytes
    consent_index: int


def audit_recipient(cert_pem: bytes, ca_pem: bytes, *, now: dt.datetime) -> bytes:
    """The auditor's sealing key (an uncompressed P-256 point) from its certificate, after
    checking the network's CA issued it, it is valid now and it carries the auditor role."""
    check_issued_by(cert_pem, ca_pem, now=now)
    if certificate_role(cert_pem) != AUDITOR_ROLE:
        raise VerificationError("this certificate does not carry the auditor role")
    key = load_certificate(cert_pem).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise MalformedInput("the auditor's certificate key is not a P-256 key")
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _plaintext(session: str, uses: tuple[AuditedUse, ...]) -> bytes:
    raw = session.encode()
    if not 1 <= len(raw) <= SESSION_BYTES:
        raise MalformedInput(f"a session is 1 to {SESSION_BYTES} bytes")
    out = bytearray([len(raw)]) + raw.ljust(SESSION_BYTES, b"\x00")  # fixed size: no length leak
    for use in uses:
        if len(use.subject) != COMMITMENT_BYTES or len(use.consent) != COMMITMENT_BYTES:
            raise MalformedInput(f"commitments are {COMMITMENT_BYTES} bytes")
        if not 0 <= use.consent_index < 2**63:
            raise MalformedInput("a grant index is in [0, 2**63)")
        out += _USE.pack(use.subject, use.consent, use.consent_index)
    return bytes(out)


def seal_uses(
    recipient: bytes, session: str, uses: tuple[AuditedUse, ...], *, info: bytes
) -> bytes:
    """``enc || ciphertext`` of the session and the uses, that only the auditor can open.

    ``info`` binds the seal to the entry's clear fields (its node, purpose, time and tags), so
    it cannot be moved to another entry."""
    if len(recipient) != POINT_BYTES:
        raise MalformedInput("the auditor's key is an uncompressed P-256 point")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), recipient)
    except ValueError as exc:
        raise MalformedInput("the auditor's key is not a P-256 point") from exc
    return _SUITE.encrypt(_plaintext(session, uses), public, info=info)


def open_uses(key_pem: bytes, sealed: bytes, *, info: bytes) -> tuple[str, tuple[AuditedUse, ...]]:
    """The session and uses sealed in ``sealed``; raise :class:`VerificationError` if this key
    cannot open it or it was moved from another entry."""
    if len(sealed) < ENC_BYTES + AEAD_TAG_BYTES:
        raise MalformedInput("a sealed use list is at least 81 bytes")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise MalformedInput("not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise MalformedInput("the auditor's key is not an EC key")
    try:
        plain = _SUITE.decrypt(sealed, key, info=info)
    except Exception as exc:  # any failure is one failure to the outside
        raise VerificationError("the sealed uses do not open with this key") from exc
    head = 1 + SESSION_BYTES
    if len(plain) < head or (len(plain) - head) % _USE.size or not 1 <= plain[0] <= SESSION_BYTES:
        raise MalformedInput("the sealed uses are malformed")
    session = plain[1 : 1 + plain[0]].decode(errors="replace")
    uses = tuple(
        AuditedUse(*_USE.unpack_from(plain, offset))
        for offset in range(head, len(plain), _USE.size)
    )
    return session, uses
