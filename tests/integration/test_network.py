"""The foundation over real sockets: registration, signed registry, mTLS refusals, bad input."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers import make_pki

from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.launcher import LocalNetwork
from accord.pki_layout import load_coordinator_verifier
from accord.proto.v1 import common_pb2, node_pb2, node_pb2_grpc, registry_pb2, registry_pb2_grpc
from accord.registry import sign_registration, verify_registry
from accord.rpc.tls import CA_FILE, CERT_FILE, PartyCredentials

ROLES = ["pay", "shop", "social", "label"]


def creds(network: LocalNetwork, party: str) -> PartyCredentials:
    return PartyCredentials.load(network.pki_dir / party)


def registry_stub(network: LocalNetwork, party: str = "pay") -> registry_pb2_grpc.RegistryStub:
    channel = creds(network, party).channel(network.parties["coordinator"].endpoint, "coordinator")
    return registry_pb2_grpc.RegistryStub(channel)


def node_info(network: LocalNetwork, channel: str) -> node_pb2.NodeInfo:
    ch = creds(network, "coordinator").channel(network.parties[channel].endpoint, channel)
    return node_pb2_grpc.NodeServiceStub(ch).GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=5)


def current_version(network: LocalNetwork) -> int:
    signed = registry_stub(network).GetRegistry(registry_pb2.GetRegistryRequest(), timeout=5)
    pay = network.pki_dir / "pay"
    return verify_registry(
        signed, load_coordinator_verifier(pay), ca_pem=(pay / CA_FILE).read_bytes()
    ).version


def test_four_nodes_register_and_every_node_verifies_the_registry(network: LocalNetwork) -> None:
    signed = registry_stub(network).GetRegistry(registry_pb2.GetRegistryRequest(), timeout=5)
    label = network.pki_dir / "label"
    view = verify_registry(
        signed, load_coordinator_verifier(label), ca_pem=(label / CA_FILE).read_bytes()
    )
    assert sorted(n.channel for n in view.nodes) == sorted(ROLES)
    assert {n.channel: n.role for n in view.nodes}["label"] == "label"
    give_up = time.monotonic() + 20
    while True:
        infos = [node_info(network, c) for c in ROLES]
        if all(i.registry_version == view.version and i.registry_nodes == 4 for i in infos):
            break
        assert time.monotonic() < give_up, [(i.channel, i.registry_version) for i in infos]
        time.sleep(0.2)
    assert {i.channel: i.customers > 0 for i in infos} == dict.fromkeys(ROLES, True)


def _assert_refused(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        registry_pb2_grpc.RegistryStub(channel).GetRegistry(
            registry_pb2.GetRegistryRequest(), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_a_client_without_a_certificate_is_refused(network: LocalNetwork) -> None:
    endpoint = network.parties["coordinator"].endpoint
    ca = (network.pki_dir / "pay" / CA_FILE).read_bytes()
    no_cert = grpc.ssl_channel_credentials(root_certificates=ca)
    _assert_refused(
        grpc.secure_channel(
            endpoint, no_cert, options=[("grpc.ssl_target_name_override", "coordinator")]
        )
    )
    _assert_refused(grpc.insecure_channel(endpoint))


def test_a_client_from_another_ca_is_refused(network: LocalNetwork, tmp_path: Path) -> None:
    foreign = make_pki(tmp_path / "foreign", network="evil.example")
    endpoint = network.parties["coordinator"].endpoint
    ours_ca = (network.pki_dir / "pay" / CA_FILE).read_bytes()
    theirs = PartyCredentials.load(foreign / "pay")
    # trusts our CA (so it could verify the server) but presents a foreign certificate
    mixed = PartyCredentials("pay", ours_ca, theirs.cert_pem, theirs.key_pem)
    _assert_refused(mixed.channel(endpoint, "coordinator"))
    # trusts only the foreign CA: cannot be fooled into talking to our server either
    _assert_refused(theirs.channel(endpoint, "coordinator"))


def test_a_node_refuses_a_tampered_registry(network: LocalNetwork) -> None:
    before = node_info(network, "shop").registry_version
    signed = registry_stub(network).GetRegistry(registry_pb2.GetRegistryRequest(), timeout=5)
    tampered = registry_pb2.SignedRegistry()
    tampered.CopyFrom(signed)
    tampered.signature = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    coordinator = creds(network, "coordinator").channel(network.parties["shop"].endpoint, "shop")
    stub = node_pb2_grpc.NodeServiceStub(coordinator)
    with pytest.raises(grpc.RpcError) as err:
        stub.UpdateRegistry(tampered, timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "does not verify" in err.value.details()  # type: ignore[attr-defined]
    # a document altered under a valid signature fails the same way
    doc = registry_pb2.RegistryDocument()
    doc.ParseFromString(signed.document)
    doc.version += 1
    altered = registry_pb2.SignedRegistry(
        document=doc.SerializeToString(), signature=signed.signature
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.UpdateRegistry(altered, timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    # only the coordinator may publish, even a valid registry
    as_pay = creds(network, "pay").channel(network.parties["shop"].endpoint, "shop")
    with pytest.raises(grpc.RpcError) as err:
        node_pb2_grpc.NodeServiceStub(as_pay).UpdateRegistry(signed, timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert node_info(network, "shop").registry_version == before


def _bad_registration(network: LocalNetwork, **changes: object) -> registry_pb2.RegisterRequest:
    identity = NoteSigner.generate("pay")
    reg = registry_pb2.NodeRegistration(
        channel="pay",
        role=common_pb2.ROLE_FEATURE,
        identity_key=identity.verifier.public_key,
        kx_key=KeyAgreementKey.generate().public_key,
        certificate_pem=(network.pki_dir / "pay" / CERT_FILE).read_bytes(),
        schema=[common_pb2.FeatureSpec(name="PAY_0", type=common_pb2.FEATURE_TYPE_INT)],
        endpoint="127.0.0.1:1",
    )
    for key, value in changes.items():
        if key == "smuggle":
            reg.schema[0].MergeFromString(b"\x4a\x0d+886912345678")  # field 9, 13 bytes
        else:
            setattr(reg, key, value)
    return sign_registration(reg, identity)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"kx_key": b"\x01" * 16}, "kx_key: X25519 public key must be 32 bytes"),
        ({"identity_key": b"\x01" * 31}, "identity_key"),
        ({"role": 9}, "not a known role"),
        ({"smuggle": True}, "does not define"),
        ({"endpoint": "x" * 80_000 + ":1"}, "the limit is 65536"),
    ],
)
def test_malformed_registration_is_invalid_argument_and_changes_nothing(
    network: LocalNetwork, changes: dict[str, object], needle: str
) -> None:
    before = current_version(network)
    with pytest.raises(grpc.RpcError) as err:
        registry_stub(network).Register(_bad_registration(network, **changes), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert needle in err.value.details()  # type: ignore[attr-defined]
    assert current_version(network) == before


def test_a_party_cannot_register_another_channel(network: LocalNetwork) -> None:
    before = current_version(network)
    request = _bad_registration(network)
    with pytest.raises(grpc.RpcError) as err:
        registry_stub(network, party="shop").Register(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert current_version(network) == before


def test_health_and_reflection_on_every_server(network: LocalNetwork) -> None:
    for party, peer_services in [
        ("coordinator", "accord.v1.Registry"),
        ("pay", "accord.v1.NodeService"),
    ]:
        channel = creds(network, "label").channel(network.parties[party].endpoint, party)
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert peer_services in names
        assert "grpc.health.v1.Health" in names
