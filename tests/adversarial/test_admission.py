"""An outsider or a misbehaving member tries to join the network or act beyond its role.

A real coordinator (its gRPC server, mTLS, the authorization interceptor and the operator-signed
membership list) faces callers holding: a certificate the CA signed but the operator never
listed, a listed party's certificate re-issued under another role, a second label node, a
party registering under a role its certificate does not carry, and a certificate from another
CA. Each is refused with PERMISSION_DENIED (or never gets a TLS session at all), and nothing
is stored: the registry stays at its version and the ledger at its size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from helpers import make_pki

from accord.coordinator.app import Coordinator, CoordinatorConfig, start_coordinator
from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.crypto.pki import (
    IssuedKeyPair,
    make_ca,
    make_certificate_request,
    new_private_key,
    sign_certificate_request,
)
from accord.pki_layout import (
    MEMBERS_FILE,
    create_ca,
    install_certificate,
    request_credentials,
    sign_request,
)
from accord.proto.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc, registry_pb2, registry_pb2_grpc
from accord.registry import ROLES as ROLE_NAMES
from accord.registry import sign_exchange_keys, sign_registration
from accord.rpc.tls import CA_FILE, CERT_FILE, KEY_FILE, PartyCredentials

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, Path]]:
    pki = make_pki(tmp_path_factory.mktemp("pki") / "pki")
    coordinator = start_coordinator(
        CoordinatorConfig(
            data_dir=tmp_path_factory.mktemp("coordinator"),
            pki_dir=pki / "coordinator",
            listen="127.0.0.1:0",
        )
    )
    yield coordinator, pki
    coordinator.stop()


def _ca(pki: Path) -> IssuedKeyPair:
    return IssuedKeyPair((pki / "ca" / "ca.key").read_bytes(), (pki / "ca" / CA_FILE).read_bytes())


def _credentials(
    pki: Path, party: str, role: str, ca: IssuedKeyPair | None = None
) -> PartyCredentials:
    """A key and a certificate for ``party`` with ``role``, signed by ``ca`` (default: the
    network's own CA) but never put on the membership list."""
    ca = ca or _ca(pki)
    key = new_private_key()
    cert = sign_certificate_request(
        ca, make_certificate_request(key, party, role), role=role, now=NOW
    )
    return PartyCredentials(party, (pki / "ca" / CA_FILE).read_bytes(), cert, key)


def _registration(creds: PartyCredentials, role: int) -> registry_pb2.RegisterRequest:
    identity = NoteSigner.generate(creds.party)
    kx_key = KeyAgreementKey.generate().public_key
    reg = registry_pb2.NodeRegistration(
        channel=creds.party,
        role=role,
        identity_key=identity.verifier.public_key,
        kx_key=kx_key,
        certificate_pem=creds.cert_pem,
        schema=[common_pb2.FeatureSpec(name="X_0", type=common_pb2.FEATURE_TYPE_INT)],
        endpoint="127.0.0.1:4000",
        key_statement=sign_exchange_keys(
            creds.key_pem,
            ca_pem=creds.ca_pem,
            channel=creds.party,
            role=ROLE_NAMES.get(role, "feature"),
            identity_key=identity.verifier.public_key,
            kx_key=kx_key,
        ),
    )
    return sign_registration(reg, identity)


def _state(coordinator: Coordinator) -> tuple[int, int]:
    """(registry version, ledger size): what a refused call must leave as it was."""
    return coordinator.registry.view().version, coordinator.ledger.sequencer.head().size


def _register(coordinator: Coordinator, creds: PartyCredentials, role: int) -> grpc.RpcError:
    with creds.channel(coordinator.endpoint, "coordinator") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            registry_pb2_grpc.RegistryStub(channel).Register(_registration(creds, role), timeout=10)
    error = refused.value
    assert isinstance(error, grpc.RpcError)
    return error


def test_party_the_operator_never_listed_is_refused(network: tuple[Coordinator, Path]) -> None:
    coordinator, pki = network
    before = _state(coordinator)
    stranger = _credentials(pki, "crm", "feature")
    error = _register(coordinator, stranger, common_pb2.ROLE_FEATURE)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not a member" in (error.details() or "")
    with stranger.channel(coordinator.endpoint, "coordinator") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            ledger_pb2_grpc.LedgerStub(channel).Append(
                ledger_pb2.AppendRequest(entries=[b"x"]), timeout=10
            )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert _state(coordinator) == before


def test_listed_party_with_a_certificate_for_another_role_is_refused(
    network: tuple[Coordinator, Path],
) -> None:
    coordinator, pki = network
    before = _state(coordinator)
    # pay is listed as a feature node; the CA was tricked into a label certificate for it
    error = _register(coordinator, _credentials(pki, "pay", "label"), common_pb2.ROLE_LABEL)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admitted as feature" in (error.details() or "")
    assert _state(coordinator) == before


def test_second_label_node_is_refused(network: tuple[Coordinator, Path]) -> None:
    coordinator, pki = network
    before = _state(coordinator)
    error = _register(coordinator, _credentials(pki, "crm", "label"), common_pb2.ROLE_LABEL)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _state(coordinator) == before


def test_member_registering_under_a_role_its_certificate_lacks_is_refused(
    network: tuple[Coordinator, Path],
) -> None:
    coordinator, pki = network
    before = _state(coordinator)
    shop = PartyCredentials.load(pki / "shop")  # a listed feature node
    error = _register(coordinator, shop, common_pb2.ROLE_LABEL)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may register only as feature" in (error.details() or "")
    assert _state(coordinator) == before


def test_member_calling_outside_its_role_is_refused(network: tuple[Coordinator, Path]) -> None:
    coordinator, pki = network
    before = _state(coordinator)
    marketer = PartyCredentials.load(pki / "marketer")  # listed, but not a node
    error = _register(coordinator, marketer, common_pb2.ROLE_FEATURE)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "marketer role, which may not call /accord.v1.Registry/Register" in (
        error.details() or ""
    )
    assert _state(coordinator) == before


def test_certificate_from_another_ca_gets_no_session(network: tuple[Coordinator, Path]) -> None:
    coordinator, pki = network
    before = _state(coordinator)
    rogue_ca = make_ca("rogue.test", now=NOW)
    rogue = _credentials(pki, "pay", "feature", ca=rogue_ca)
    error = _register(coordinator, rogue, common_pb2.ROLE_FEATURE)
    # the mTLS handshake fails: no call reaches any handler
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    assert _state(coordinator) == before


def test_own_key_request_sign_install_then_admitted(tmp_path: Path) -> None:
    """The partner's path: its key never leaves its folder; the operator signs and lists it;
    the coordinator picks the new membership list up without a restart."""
    operator, coordinator_dir, pay_dir = tmp_path / "op", tmp_path / "coord", tmp_path / "pay"
    create_ca(operator, network="accord.test", now=NOW)
    request = request_credentials(
        coordinator_dir, "coordinator", "coordinator", network="accord.test"
    )
    sign_request(operator, request, role="coordinator", out=tmp_path / "c.crt", now=NOW)
    install_certificate(
        coordinator_dir, tmp_path / "c.crt", operator / CA_FILE, coordinator_key=None, now=NOW
    )
    (coordinator_dir / MEMBERS_FILE).write_bytes((operator / MEMBERS_FILE).read_bytes())
    coordinator = start_coordinator(
        CoordinatorConfig(data_dir=tmp_path / "data", pki_dir=coordinator_dir, listen="127.0.0.1:0")
    )
    try:
        pay_request = request_credentials(pay_dir, "pay", "feature", network="accord.test")
        assert not (tmp_path / "pay.crt").exists()
        with pytest.raises(Exception, match="asked for role"):
            sign_request(operator, pay_request, role="label", out=tmp_path / "pay.crt", now=NOW)
        sign_request(operator, pay_request, role="feature", out=tmp_path / "pay.crt", now=NOW)
        install_certificate(
            pay_dir,
            tmp_path / "pay.crt",
            operator / CA_FILE,
            coordinator_key=coordinator_dir / "coordinator.vkey",
            now=NOW,
        )
        pay = PartyCredentials.load(pay_dir)
        assert (pay_dir / KEY_FILE).stat().st_mode & 0o077 == 0
        # signed, but the coordinator's list does not name it yet
        assert _register(coordinator, pay, common_pb2.ROLE_FEATURE).code() == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert coordinator.registry.view().version == 1
        (coordinator_dir / MEMBERS_FILE).write_bytes((operator / MEMBERS_FILE).read_bytes())
        with pay.channel(coordinator.endpoint, "coordinator") as channel:
            registry_pb2_grpc.RegistryStub(channel).Register(
                _registration(pay, common_pb2.ROLE_FEATURE), timeout=10
            )
        assert [n.channel for n in coordinator.registry.view().nodes] == ["pay"]
        assert (pay_dir / CERT_FILE).exists()
    finally:
        coordinator.stop()
