"""The network's membership list: who is admitted, with which role and which certificate.

The operator (who holds the network CA's key) signs the list; the coordinator admits a caller
only if the list names its party, the role its certificate carries and that certificate's
fingerprint. A certificate the CA signed but the operator did not list, a second certificate
for a listed party, or a party under another role is refused before anything is stored.

The signed file is JSON ``{"document": <canonical JSON text>, "signature": <base64>}``; the
signature (ECDSA P-256, SHA-256, by the CA key) covers ``DOMAIN || document`` exactly as
written, so verifying never depends on how a JSON library re-serialises. Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.pki import check_party_name, check_role, load_certificate

DOMAIN = b"accord.v1.Membership\n"
FINGERPRINT_HEX = 64
UNIQUE_ROLES = ("coordinator", "label")  # a network has one of each


@dataclass(frozen=True)
class Member:
    party: str
    role: str
    fingerprint: str  # SHA-256 of the member's certificate (DER), lower-case hex


@dataclass(frozen=True)
class Membership:
    network: str
    version: int
    members: tuple[Member, ...] = ()

    def member(self, party: str) -> Member | None:
        return next((m for m in self.members if m.party == party), None)

    def with_member(self, member: Member) -> Membership:
        """This list with ``member`` added (or its entry replaced), one version later."""
        check_party_name(member.party)
        check_role(member.role)
        _check_fingerprint(member.fingerprint)
        if member.role in UNIQUE_ROLES:
            holder = next(
                (m for m in self.members if m.role == member.role and m.party != member.party),
                None,
            )
            if holder is not None:
                raise VerificationError(
                    f"{holder.party!r} already holds the {member.role} role; a network has one"
                )
        others = tuple(m for m in self.members if m.party != member.party)
        members = tuple(sorted((*others, member), key=lambda m: m.party))
        return replace(self, version=self.version + 1, members=members)

    def without(self, party: str) -> Membership:
        if self.member(party) is None:
            raise MalformedInput(f"{party!r} is not a member")
        members = tuple(m for m in self.members if m.party != party)
        return replace(self, version=self.version + 1, members=members)


def _check_fingerprint(value: str) -> str:
    if len(value) != FINGERPRINT_HEX or any(c not in "0123456789abcdef" for c in value):
        raise MalformedInput("a certificate fingerprint is 64 lower-case hex digits (SHA-256)")
    return value


def _document(membership: Membership) -> bytes:
    body = {
        "network": membership.network,
        "version": membership.version,
        "members": [
            {"party": m.party, "role": m.role, "fingerprint": m.fingerprint}
            for m in membership.members
        ],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_membership(membership: Membership, ca_key_pem: bytes) -> bytes:
    """The signed membership file's bytes."""
    key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise MalformedInput("the CA key is not an EC key")
    document = _document(membership)
    signature = key.sign(DOMAIN + document, ec.ECDSA(hashes.SHA256()))
    return (
        json.dumps(
            {"document": document.decode(), "signature": base64.b64encode(signature).decode()},
            indent=2,
        )
        + "\n"
    ).encode()


def verify_membership(signed: bytes, ca_cert_pem: bytes) -> Membership:
    """The membership list in ``signed`` after checking the CA's signature over it."""
    try:
        outer = json.loads(signed)
        document = outer["document"].encode()
        signature = base64.b64decode(outer["signature"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise MalformedInput("not a signed membership file") from exc
    public_key = load_certificate(ca_cert_pem).public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise MalformedInput("the CA certificate's key is not an EC key")
    try:
        public_key.verify(signature, DOMAIN + document, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError(
            "the membership list's signature does not verify against this network's CA"
        ) from exc
    try:
        body = json.loads(document)
        members = tuple(
            Member(
                check_party_name(m["party"]),
                check_role(m["role"]),
                _check_fingerprint(m["fingerprint"]),
            )
            for m in body["members"]
        )
        membership = Membership(str(body["network"]), int(body["version"]), members)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise MalformedInput("the membership document is malformed") from exc
    if len({m.party for m in members}) != len(members):
        raise MalformedInput("the membership document lists a party twice")
    return membership
