"""A small X.509 PKI for one Accord network: a CA and one certificate per party.

Certificates use ECDSA P-256, which every TLS stack that gRPC ships with accepts. The party's
name is the certificate's common name and a DNS subject alternative name; ``localhost`` and the
loopback addresses are added so a single-machine network verifies hostnames too. The party's
role is bound into the certificate as its subject's organizational unit, so a server reads who
may call what from the certificate the CA signed, never from what the caller says.

Keys stay with their party: a party makes its key and a certificate request
(:func:`make_certificate_request`); the CA checks the request and signs it
(:func:`sign_certificate_request`), and only the certificate goes back. Pure: keys, requests
and certificates are PEM bytes, the caller decides where they live.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.crypto.errors import MalformedInput, VerificationError

PARTY_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# Who a party is to the network. One table of RPC -> roles (accord.rpc.roles) reads these.
ROLES = ("coordinator", "feature", "label", "marketer", "auditor")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise MalformedInput(f"role {role!r}: use one of {', '.join(ROLES)}")
    return role


def default_role(party: str) -> str:
    """The demo's convention: a party named after a role has it; every other party is a
    feature node (``pay``, ``shop``, ...)."""
    return party if party in ROLES else "feature"


def check_party_name(name: str) -> str:
    if not PARTY_NAME.match(name):
        raise MalformedInput(
            f"party name {name!r}: use 1-32 lower-case letters, digits or '-', starting "
            "with a letter"
        )
    return name


@dataclass(frozen=True)
class IssuedKeyPair:
    """A private key and its certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes

    def __repr__(self) -> str:
        return "IssuedKeyPair(<key withheld>)"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(network: str, *, now: dt.datetime, days: int = 3650) -> IssuedKeyPair:
    """A self-signed CA for the network called ``network``."""
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Accord network"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{network} CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedKeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def new_private_key() -> bytes:
    """A fresh P-256 private key, PEM (PKCS#8, unencrypted: the caller stores it mode 0600)."""
    return _key_pem(_new_key())


def _load_ec_key(key_pem: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise MalformedInput(f"{what} is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise MalformedInput(f"{what} is not an EC key")
    return key


def _subject(party: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, party),
        ]
    )


def make_certificate_request(key_pem: bytes, party: str, role: str) -> bytes:
    """A PKCS#10 request for ``party`` with ``role``, signed by the party's own key."""
    check_party_name(party)
    check_role(role)
    key = _load_ec_key(key_pem, "the party key")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject(party, role))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertificateRequest:
    """A checked certificate request: who asks, for which role, with which public key."""

    party: str
    role: str
    key_fingerprint: str  # SHA-256 of the public key (DER SubjectPublicKeyInfo), hex

    def __str__(self) -> str:
        return f"{self.party} (role {self.role}, key {self.key_fingerprint[:16]})"


def _single(name: x509.Name, oid: x509.ObjectIdentifier, what: str) -> str:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise MalformedInput(f"{what} has no single {oid._name}")
    value = values[0].value
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise MalformedInput(f"{what}'s {oid._name} is not UTF-8 text") from exc


def read_certificate_request(csr_pem: bytes) -> CertificateRequest:
    """Parse a request and check that the key it names signed it."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise MalformedInput("not a PEM certificate request (PKCS#10)") from exc
    if not csr.is_signature_valid:
        raise VerificationError("the certificate request's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise MalformedInput("the certificate request must be for a P-256 key")
    party = check_party_name(_single(csr.subject, NameOID.COMMON_NAME, "the request"))
    role = check_role(_single(csr.subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "the request"))
    return CertificateRequest(party, role, _key_fingerprint(public_key))


def _key_fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def sign_certificate_request(
    ca: IssuedKeyPair, csr_pem: bytes, *, role: str, now: dt.datetime, days: int = 825
) -> bytes:
    """The CA's certificate for a checked request. ``role`` is what the operator grants; it
    must be the role the party asked for, so neither side can change it alone."""
    request = read_certificate_request(csr_pem)
    if request.role != check_role(role):
        raise VerificationError(
            f"{request.party!r} asked for role {request.role!r}, not {role!r}: "
            "the party makes a new request for the role it is granted"
        )
    csr = x509.load_pem_x509_csr(csr_pem)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked by the read above
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = _load_ec_key(ca.key_pem, "the CA key")
    cert = (
        x509.CertificateBuilder()
        .subject_name(_subject(request.party, request.role))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(request.party),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def issue_party_certificate(
    ca: IssuedKeyPair,
    party: str,
    *,
    now: dt.datetime,
    role: str | None = None,
    days: int = 825,
) -> IssuedKeyPair:
    """Key, request and certificate in one step: the demo's shortcut (``accord pki init``)."""
    key_pem = new_private_key()
    granted = role or default_role(party)
    csr = make_certificate_request(key_pem, party, granted)
    return IssuedKeyPair(
        key_pem, sign_certificate_request(ca, csr, role=granted, now=now, days=days)
    )


def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise MalformedInput("not a PEM X.509 certificate") from exc


def _certificate_subject(pem: bytes) -> x509.Name:
    try:
        # the subject is decoded only when first read: a malformed one raises here
        return load_certificate(pem).subject
    except ValueError as exc:
        raise MalformedInput("the certificate's subject does not parse") from exc


def certificate_common_name(pem: bytes) -> str:
    """The subject common name of a PEM certificate."""
    return _single(_certificate_subject(pem), NameOID.COMMON_NAME, "certificate")


def certificate_role(pem: bytes) -> str:
    """The role the CA bound into a party certificate (its subject's organizational unit)."""
    return check_role(
        _single(_certificate_subject(pem), NameOID.ORGANIZATIONAL_UNIT_NAME, "certificate")
    )


def certificate_fingerprint(pem: bytes) -> str:
    """SHA-256 of the certificate's DER encoding, hex: what a membership list names."""
    return load_certificate(pem).fingerprint(hashes.SHA256()).hex()


def check_issued_by(cert_pem: bytes, ca_pem: bytes, *, now: dt.datetime) -> None:
    """Raise unless ``cert_pem`` was signed by the CA of ``ca_pem`` and is valid at ``now``."""
    cert, ca_cert = load_certificate(cert_pem), load_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise VerificationError("the certificate was not issued by this network's CA") from exc
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise VerificationError("the certificate is not valid now (expired or not yet valid)")


def public_key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether ``key_pem`` is the private key of the certificate's public key."""
    key = _load_ec_key(key_pem, "the private key")
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return load_certificate(cert_pem).public_key().public_bytes(der, spki) == (
        key.public_key().public_bytes(der, spki)
    )


def same_certificate(a_pem: bytes, b_pem: bytes) -> bool:
    """Whether two PEM blobs hold the same certificate (compared in DER)."""
    der = serialization.Encoding.DER
    return load_certificate(a_pem).public_bytes(der) == load_certificate(b_pem).public_bytes(der)
