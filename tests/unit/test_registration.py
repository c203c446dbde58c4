"""Registration is validated field by field; bad input is refused with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.errors import InvalidInput, NotAuthenticated
from accord.proto.v1 import common_pb2, registry_pb2
from accord.registry import sign_registration, verify_registration
from accord.rpc.tls import CERT_FILE


def _registration(pki_dir: Path, channel: str = "pay") -> registry_pb2.NodeRegistration:
    return registry_pb2.NodeRegistration(
        channel=channel,
        role=common_pb2.ROLE_FEATURE,
        identity_key=b"",
        kx_key=KeyAgreementKey.generate().public_key,
        certificate_pem=(pki_dir / channel / CERT_FILE).read_bytes(),
        schema=[common_pb2.FeatureSpec(name="PAY_0", type=common_pb2.FEATURE_TYPE_INT)],
        endpoint="127.0.0.1:4000",
    )


def _signed(
    reg: registry_pb2.NodeRegistration, identity: NoteSigner | None = None
) -> registry_pb2.RegisterRequest:
    identity = identity or NoteSigner.generate(reg.channel or "x")
    if not reg.identity_key:
        reg.identity_key = identity.verifier.public_key
    return sign_registration(reg, identity)


def test_a_good_registration_verifies(pki_dir: Path) -> None:
    node = verify_registration(_signed(_registration(pki_dir)))
    assert node.channel == "pay"
    assert node.role == "feature"
    assert [c.name for c in node.schema] == ["PAY_0"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: setattr(r, "kx_key", b"\x01" * 31), "registration.kx_key"),
        (lambda r: setattr(r, "identity_key", b"\x01" * 33), "registration.identity_key"),
        (lambda r: setattr(r, "role", 7), "registration.role"),
        (lambda r: setattr(r, "role", 0), "registration.role"),
        (lambda r: setattr(r, "channel", "Pay!"), "registration.channel"),
        (lambda r: setattr(r, "endpoint", "nowhere"), "registration.endpoint"),
        (lambda r: setattr(r, "endpoint", "127.0.0.1:70000"), "registration.endpoint"),
        (lambda r: setattr(r, "certificate_pem", b"junk"), "registration.certificate_pem"),
        (lambda r: r.schema[0].__setattr__("name", "+886912345678"), "schema[0].name"),
        (lambda r: r.schema[0].__setattr__("name", "alice@example.com"), "schema[0].name"),
        (lambda r: r.schema[0].__setattr__("type", 0), "schema[0].type"),
        (lambda r: r.schema.append(r.schema[0]), "unique"),
        (lambda r: r.ClearField("schema"), "registration.schema"),
    ],
)
def test_malformed_registrations_name_the_field(pki_dir: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    reg = _registration(pki_dir)
    identity = NoteSigner.generate("pay")
    reg.identity_key = identity.verifier.public_key
    mutate(reg)
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        verify_registration(sign_registration(reg, identity))


def test_a_schema_that_carries_values_is_refused(pki_dir: Path) -> None:
    # A hostile node appends an undeclared field (number 9, a string) to a column: values
    # smuggled beside the names and types. The registry refuses anything it does not define.
    reg = _registration(pki_dir)
    identity = NoteSigner.generate("pay")
    reg.identity_key = identity.verifier.public_key
    value = b"+886912345678"
    reg.schema[0].MergeFromString(bytes([9 << 3 | 2, len(value)]) + value)
    with pytest.raises(InvalidInput, match="fields this API does not define"):
        verify_registration(sign_registration(reg, identity))


def test_an_oversized_registration_is_refused(pki_dir: Path) -> None:
    reg = _registration(pki_dir)
    reg.endpoint = "h" * 70_000 + ":1"
    with pytest.raises(InvalidInput, match="the limit is 65536"):
        verify_registration(_signed(reg))


def test_a_wrong_proof_of_possession_is_unauthenticated(pki_dir: Path) -> None:
    request = _signed(_registration(pki_dir))
    request.proof_of_possession = NoteSigner.generate("pay").sign(b"something else")
    with pytest.raises(NotAuthenticated, match="proof_of_possession"):
        verify_registration(request)


def test_a_certificate_for_another_party_is_refused(pki_dir: Path) -> None:
    reg = _registration(pki_dir)
    reg.certificate_pem = (pki_dir / "shop" / CERT_FILE).read_bytes()
    with pytest.raises(InvalidInput, match="issued to 'shop'"):
        verify_registration(_signed(reg))
