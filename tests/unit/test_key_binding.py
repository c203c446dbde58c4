"""A node's key statement binds its keys to its certificate, channel, role and network only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from accord.crypto.errors import VerificationError
from accord.crypto.key_binding import check_statement, sign_statement, statement_message
from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.crypto.pki import make_ca
from accord.rpc.tls import CA_FILE, CERT_FILE, KEY_FILE

IDENTITY = NoteSigner.generate("pay").verifier.public_key
KX = KeyAgreementKey.generate().public_key


def _fields(pki_dir: Path) -> dict[str, object]:
    return {
        "ca_pem": (pki_dir / "ca" / CA_FILE).read_bytes(),
        "channel": "pay",
        "role": "feature",
        "identity_key": IDENTITY,
        "kx_key": KX,
    }


def _statement(pki_dir: Path, signer: str = "pay") -> bytes:
    return sign_statement((pki_dir / signer / KEY_FILE).read_bytes(), **_fields(pki_dir))  # type: ignore[arg-type]


def _check(pki_dir: Path, statement: bytes, cert: str = "pay", **changes: object) -> None:
    fields = _fields(pki_dir) | changes
    check_statement(
        statement,
        certificate_pem=(pki_dir / cert / CERT_FILE).read_bytes(),
        **fields,  # type: ignore[arg-type]
    )


def test_the_nodes_own_statement_verifies_and_is_deterministic(pki_dir: Path) -> None:
    statement = _statement(pki_dir)
    _check(pki_dir, statement)
    assert _statement(pki_dir) == statement  # RFC 6979: re-registering changes nothing


@pytest.mark.parametrize(
    "changes",
    [
        {"kx_key": KeyAgreementKey.generate().public_key},
        {"identity_key": NoteSigner.generate("pay").verifier.public_key},
        {"channel": "shop"},
        {"role": "label"},
    ],
    ids=["kx_key", "identity_key", "channel", "role"],
)
def test_a_statement_is_good_for_its_own_binding_only(
    pki_dir: Path, changes: dict[str, object]
) -> None:
    with pytest.raises(VerificationError):
        _check(pki_dir, _statement(pki_dir), **changes)


def test_another_partys_key_or_certificate_does_not_verify(pki_dir: Path) -> None:
    with pytest.raises(VerificationError, match="not signed by its certificate"):
        _check(pki_dir, _statement(pki_dir, signer="shop"))
    # shop's statement over shop's certificate, listed as pay: the name is checked
    with pytest.raises(VerificationError, match="not issued to 'pay'"):
        _check(pki_dir, _statement(pki_dir, signer="shop"), cert="shop")
    with pytest.raises(VerificationError, match="no exchange-key statement"):
        _check(pki_dir, b"")


def test_a_certificate_of_another_network_does_not_verify(pki_dir: Path) -> None:
    other = make_ca("elsewhere", now=dt.datetime.now(dt.UTC)).cert_pem
    with pytest.raises(VerificationError, match="not issued by this network's CA"):
        _check(pki_dir, _statement(pki_dir), ca_pem=other)


def test_the_message_names_purpose_network_and_fields_unambiguously(pki_dir: Path) -> None:
    fields = _fields(pki_dir)
    one = statement_message(**fields)  # type: ignore[arg-type]
    # moving bytes from one field to the next gives another message (length prefixes)
    two = statement_message(**(fields | {"channel": "pa", "role": "yfeature"}))  # type: ignore[arg-type]
    assert one != two
    assert one.startswith(b"accord.v1.ExchangeKeyStatement\n")
