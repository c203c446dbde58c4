"""A small X.509 PKI for one Accord network: a CA and one certificate per party.

Certificates use ECDSA P-256, which every TLS stack that gRPC ships with accepts. The party's
name is the certificate's common name and a DNS subject alternative name; ``localhost`` and the
loopback addresses are added so a single-machine network verifies hostnames too. Pure: keys and
certificates are returned as PEM bytes, the caller decides where they live.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.crypto.errors import MalformedInput

PARTY_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


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


def issue_party_certificate(
    ca: IssuedKeyPair, party: str, *, now: dt.datetime, days: int = 825
) -> IssuedKeyPair:
    """A certificate for ``party`` usable as both TLS server and client (mutual TLS)."""
    check_party_name(party)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise MalformedInput("the CA key is not an EC key")
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(party),
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
    return IssuedKeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise MalformedInput("not a PEM X.509 certificate") from exc


def certificate_common_name(pem: bytes) -> str:
    """The subject common name of a PEM certificate."""
    names = load_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise MalformedInput("certificate has no single common name")
    value = names[0].value
    return value if isinstance(value, str) else value.decode()


def same_certificate(a_pem: bytes, b_pem: bytes) -> bool:
    """Whether two PEM blobs hold the same certificate (compared in DER)."""
    der = serialization.Encoding.DER
    return load_certificate(a_pem).public_bytes(der) == load_certificate(b_pem).public_bytes(der)
