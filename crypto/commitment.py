"""Salted commitments: what the ledger says instead of a person.

A node keeps one random 32-byte salt per customer and writes only HMAC-SHA256 commitments under
it: one to the customer at that node, one to each consent record. Without the salt a commitment
is unlinkable to anyone (it hides, because the salt is secret and random) and it cannot be
opened to another person (it binds, because HMAC-SHA256 is collision resistant). Erasure destroys
the salt: the ledger stays verifiable, the person becomes unlinkable. The customer receives an
:class:`Opening` (salt and reference) through export, so they or an auditor they choose can
recompute their commitments and find their trail.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from hashlib import sha256

from accord.crypto.errors import MalformedInput, VerificationError

SALT_BYTES = 32


def _field(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 0xFFFF:
        raise MalformedInput("a committed field is at most 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def _check_salt(salt: bytes) -> None:
    if len(salt) != SALT_BYTES:
        raise MalformedInput(f"a commitment salt is {SALT_BYTES} bytes, got {len(salt)}")


def subject_commitment(salt: bytes, node: str, local_ref: str) -> bytes:
    """The commitment that stands for one customer at one node."""
    _check_salt(salt)
    return hmac.new(
        salt, b"accord-subject-v1\x00" + _field(node) + _field(local_ref), sha256
    ).digest()


def consent_commitment(salt: bytes, record_id: str, terms_digest: bytes) -> bytes:
    """The commitment that stands for one consent record (its id and the digest of its terms)."""
    _check_salt(salt)
    if len(terms_digest) != 32:
        raise MalformedInput("a terms digest is 32 bytes")
    return hmac.new(
        salt, b"accord-consent-v1\x00" + _field(record_id) + terms_digest, sha256
    ).digest()


USE_TAG_DOMAIN = b"accord-use-tag-v1\x00"


def use_tag_key(salt: bytes, node: str, local_ref: str) -> bytes:
    """The key behind one customer's data-use tags at one node (:mod:`accord.crypto.use_seal`).

    The same salt as the commitments under another label: it never appears on the ledger, so
    only the node and the holder of the opening can recognise the customer's uses."""
    _check_salt(salt)
    return hmac.new(salt, USE_TAG_DOMAIN + _field(node) + _field(local_ref), sha256).digest()


@dataclass(frozen=True)
class Opening:
    """What a customer holds to recompute their commitments at one node."""

    node: str
    local_ref: str
    salt: bytes

    def subject(self) -> bytes:
        return subject_commitment(self.salt, self.node, self.local_ref)

    def use_tag_key(self) -> bytes:
        return use_tag_key(self.salt, self.node, self.local_ref)

    def check(self, commitment: bytes) -> None:
        if not hmac.compare_digest(self.subject(), commitment):
            raise VerificationError("this opening does not open that commitment")

    def __repr__(self) -> str:
        return f"Opening(node={self.node!r}, local_ref=<withheld>)"
