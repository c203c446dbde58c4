from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from accord.crypto.errors import MalformedInput
from accord.crypto.pki import (
    certificate_common_name,
    check_party_name,
    issue_party_certificate,
    make_ca,
    same_certificate,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_party_certificate_is_signed_by_the_ca_and_names_the_party() -> None:
    ca = make_ca("accord.test", now=NOW)
    issued = issue_party_certificate(ca, "pay", now=NOW)
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    cert.verify_directly_issued_by(ca_cert)
    assert certificate_common_name(issued.cert_pem) == "pay"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "pay" in sans.get_values_for_type(x509.DNSName)
    assert same_certificate(issued.cert_pem, issued.cert_pem)
    assert not same_certificate(
        issued.cert_pem, issue_party_certificate(ca, "pay", now=NOW).cert_pem
    )
    assert "PRIVATE" not in repr(issued)


@pytest.mark.parametrize("name", ["", "Pay", "1pay", "pay shop", "a" * 33, "pay_1"])
def test_bad_party_names_are_refused(name: str) -> None:
    with pytest.raises(MalformedInput):
        check_party_name(name)


def test_garbage_is_not_a_certificate() -> None:
    with pytest.raises(MalformedInput):
        certificate_common_name(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
