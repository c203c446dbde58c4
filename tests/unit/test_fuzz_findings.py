"""What the fuzzer (make fuzz) found: inputs that escaped as TypeError, ValueError,
UnicodeDecodeError, csv.Error, InvalidVersion or RecursionError, and are now refused with the
project's errors (and, at the CLI, one readable line)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from accord import credentials
from accord.audit import read_proof_file
from accord.cli.main import run
from accord.consent import credential as cred
from accord.consent.events import decode
from accord.coordinator.policy import parse_policy
from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.crypto.membership import DOMAIN as MEMBERSHIP_DOMAIN
from accord.crypto.membership import verify_membership
from accord.crypto.merkle import ConsistencyProof, InclusionProof
from accord.crypto.pki import certificate_common_name, issue_party_certificate, make_ca
from accord.crypto.statusmap import StatusProof
from accord.data.channel_file import read_channel_table
from accord.data.consents import read_decisions
from accord.data.purchase_file import read_purchase_log
from accord.errors import InvalidInput, NotAuthenticated

HASH = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("parse", "doc"),
    [
        (
            InclusionProof.from_json,
            {"leafIdx": 0, "treeSize": 1, "root": "ΑΑ==", "leafHash": HASH, "proof": []},
        ),
        (
            ConsistencyProof.from_json,
            {"size1": 1, "size2": 2, "root1": HASH, "root2": HASH, "proof": ["é" * 44]},
        ),
        (StatusProof.from_json, {"siblings": ["ü" * 44]}),
    ],
)
def test_proof_json_with_non_ascii_base64_is_refused(parse, doc) -> None:  # type: ignore[no-untyped-def]
    # base64.b64decode raises a bare ValueError (not binascii.Error) for a non-ASCII str
    with pytest.raises(InvalidInput, match="not valid base64"):
        parse(doc)


def _issued_messages() -> list[bytes]:
    fields = cred.CredentialFields("shop", 1_790_035_200, "2026-09", "TW", ("marketing",))
    return fields.messages()


@pytest.mark.parametrize(
    ("index", "message"),
    [(cred.CHANNEL, b"channel:\xff\xfe"), (cred.EXPIRES, b"expires:17900352\x010")],
)
def test_issued_credential_messages_out_of_layout_are_refused(index: int, message: bytes) -> None:
    messages = _issued_messages()
    messages[index] = message
    with pytest.raises(InvalidInput, match="not in the signed layout"):
        cred.CredentialFields.from_messages(messages)


def _party_certificate_der() -> bytes:
    now = dt.datetime.now(dt.UTC)
    pem = issue_party_certificate(make_ca("accord.test", now=now), "pay", now=now).cert_pem
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def _pem(der: bytes) -> bytes:
    return (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    )


def test_a_certificate_whose_subject_does_not_parse_is_refused() -> None:
    der = _party_certificate_der()
    at = der.index(b"\x0c\x03pay")  # the subject's common name, a UTF8String
    broken = _pem(der[:at] + b"\x0c\x03\xff\xfe\xfd" + der[at + 5 :])
    x509.load_pem_x509_certificate(broken)  # loads: the subject is decoded on first use
    with pytest.raises(InvalidInput, match="subject does not parse"):
        certificate_common_name(broken)


def test_a_certificate_of_an_unknown_x509_version_is_refused() -> None:
    der = _party_certificate_der()
    at = der.index(b"\xa0\x03\x02\x01\x02")  # [0] EXPLICIT version v3
    broken = _pem(der[:at] + b"\xa0\x03\x02\x01\x22" + der[at + 5 :])
    with pytest.raises(x509.InvalidVersion):  # not a ValueError: it escaped the old check
        x509.load_pem_x509_certificate(broken)
    with pytest.raises(InvalidInput, match=r"not a PEM X\.509 certificate"):
        certificate_common_name(broken)


def test_a_policy_rule_whose_touchpoint_is_a_number_is_refused() -> None:
    text = 'version = "v"\ndefault_action = "review"\n[[rule]]\nname = "r"\naction = "allow"\n'
    assert parse_policy(text + 'touchpoint = "checkout"\n').rules[0].touchpoints == ("checkout",)
    with pytest.raises(InvalidInput, match="touchpoint must be a name or a list of names"):
        parse_policy(text + "touchpoint = 5\n")


PURCHASES = b"local_ref,phone,email,date,number_of_cds,dollar_value\n"
DECISIONS = b"local_ref,purposes,notice_version,collection_method,jurisdiction,expires\n"


def _channel_files(tmp_path: Path, body: bytes) -> Path:
    schema = {"channel": "shop", "columns": [{"name": "SHOP_0", "type": "int"}]}
    (tmp_path / "shop.schema.json").write_text(json.dumps(schema))
    path = tmp_path / "shop.csv"
    path.write_bytes(b"local_ref,phone,email,SHOP_0\n" + body)
    return path


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"c1,,a@example.com,\xff\n", ": the file is not UTF-8 text"),
        (b'c1,,"' + b"x" * 200_000 + b'",1\n', ":2: not a well-formed CSV file"),
    ],
    ids=["not-utf8", "oversized-field"],
)
def test_unreadable_csv_imports_are_refused(tmp_path: Path, body: bytes, where: str) -> None:
    purchases = tmp_path / "shop.purchases.csv"
    purchases.write_bytes(PURCHASES + body)
    decisions = tmp_path / "decisions.csv"
    decisions.write_bytes(DECISIONS + body)
    for read, path in (
        (read_purchase_log, purchases),
        (read_decisions, decisions),
        (read_channel_table, _channel_files(tmp_path, body)),
    ):
        with pytest.raises(InvalidInput, match=rf"{path.name}{where}"):
            read(path)


DEEP = b"[" * 5000  # nested deeper than the interpreter's stack: json raises RecursionError


def test_a_ledger_entry_nested_too_deep_is_refused() -> None:
    with pytest.raises(InvalidInput, match="canonical JSON"):
        decode(DEEP)


def test_an_sd_jwt_disclosure_nested_too_deep_is_refused() -> None:
    deep = base64.urlsafe_b64encode(DEEP).decode().rstrip("=")
    with pytest.raises(NotAuthenticated, match="a disclosure does not decode"):
        credentials.verify(
            f"eyJhbGciOiJFZERTQSJ9.e30.AA~{deep}~kb",
            node="pay",
            kx_key=KeyAgreementKey.generate(),
            issuer=NoteSigner.generate("accord.test/coordinator").verifier,
            purpose="marketing",
            now=0,
        )


def test_a_holder_jwk_with_a_field_of_another_key_type_is_refused() -> None:
    # jwcrypto raises KeyError for "k" (a symmetric key's field) on an EC key
    jwk = json.dumps({"kty": "EC", "crv": "P-256", "k": "AA", "x": "AA", "y": "AA"})
    with pytest.raises(InvalidInput, match="holder_jwk is not a JWK"):
        credentials.issue(
            NoteSigner.generate("accord.test/coordinator"),
            request_id="r1",
            purposes=["marketing"],
            touchpoint="checkout",
            model="m1",
            nodes={},
            holder_jwk=jwk,
            now=0,
        )


def test_proof_files_nested_too_deep_are_refused(tmp_path: Path) -> None:
    proof = tmp_path / "proof.json"
    proof.write_bytes(DEEP)
    with pytest.raises(InvalidInput, match="is not JSON"):
        read_proof_file(proof)
    (tmp_path / "shop.schema.json").write_bytes(DEEP)
    (tmp_path / "shop.csv").write_bytes(b"local_ref,phone,email\n")
    with pytest.raises(InvalidInput, match="is not valid JSON"):
        read_channel_table(tmp_path / "shop.csv")


def test_a_membership_list_nested_too_deep_is_refused() -> None:
    now = dt.datetime.now(dt.UTC)
    ca = make_ca("accord.test", now=now)
    with pytest.raises(InvalidInput, match="not a signed membership file"):
        verify_membership(DEEP, ca.cert_pem)
    # behind a valid CA signature, too: the operator signs what its tool wrote, but the parser
    # is the last line of defence for a file passed around by hand
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(MEMBERSHIP_DOMAIN + DEEP, ec.ECDSA(hashes.SHA256()))
    signed = json.dumps(
        {"document": DEEP.decode(), "signature": base64.b64encode(signature).decode()}
    ).encode()
    with pytest.raises(InvalidInput, match="membership document is malformed"):
        verify_membership(signed, ca.cert_pem)


@pytest.mark.parametrize("content", [DEEP, b"\xff\xfe{}"], ids=["too-deep", "not-utf8"])
def test_cli_files_that_do_not_read_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    shown = tmp_path / "presentation.json"
    shown.write_bytes(content)
    options = ["--public-key", "00", "--channel", "shop", "--purpose", "marketing"]
    options += ["--nonce", "00", "--audience", "coordinator"]
    code = run(["wallet", "verify", "--presentation", str(shown), *options])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1 and "is not a presentation" in lines[0], err
    proof = tmp_path / "consent-proof.json"
    proof.write_bytes(content)
    assert run(["audit", "consent", "--proof", str(proof), "--pki", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not JSON" in lines[0], err
