"""Every RPC with every role: the one table in accord.rpc.roles decides, on a real server.

A real gRPC server with mTLS and the authorization interceptor serves every method of every
Accord service (handlers that answer empty messages, so allowed calls have no side effects);
a client holding a certificate of each role calls each method. A call goes through exactly when
the table lists the caller's role; otherwise it is PERMISSION_DENIED naming the role.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from helpers import make_pki

import accord.proto.v1
from accord.crypto.pki import ROLES
from accord.rpc.roles import ALLOWED_ROLES, allowed_roles
from accord.rpc.server import RunningServer, create_server
from accord.rpc.tls import PartyCredentials

# every generated module, so a new service cannot be left out of this test
MODULES = tuple(
    importlib.import_module(f"accord.proto.v1.{m.name}")
    for m in pkgutil.iter_modules(accord.proto.v1.__path__)
    if m.name.endswith("_pb2")
)
PARTY_OF_ROLE = {
    "coordinator": "coordinator",
    "feature": "pay",
    "label": "label",
    "marketer": "marketer",
    "auditor": "auditor",
}


def _methods() -> list[tuple[str, bool, bool]]:
    """(full name, client streaming, server streaming) of every Accord RPC."""
    found = []
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.append(
                    (
                        f"/{service.full_name}/{method.name}",
                        method.client_streaming,
                        method.server_streaming,
                    )
                )
    return found


METHODS = _methods()


def _nothing(_response: object) -> bytes:
    return b""


def _echo(method: str, client_streaming: bool, server_streaming: bool) -> grpc.RpcMethodHandler:
    # Handlers answer None, serialised as an empty message: the interceptors treat any iterable
    # answer (bytes included) as a stream.
    def consume(request: Any) -> None:
        if client_streaming:
            for _ in request:
                pass

    if client_streaming and server_streaming:

        def bidi(request: Any, _ctx: grpc.ServicerContext) -> Iterator[None]:
            consume(request)
            yield None

        return grpc.stream_stream_rpc_method_handler(bidi, response_serializer=_nothing)
    if server_streaming:

        def out(request: Any, _ctx: grpc.ServicerContext) -> Iterator[None]:
            yield None

        return grpc.unary_stream_rpc_method_handler(out, response_serializer=_nothing)
    if client_streaming:

        def inward(request: Any, _ctx: grpc.ServicerContext) -> None:
            consume(request)

        return grpc.stream_unary_rpc_method_handler(inward, response_serializer=_nothing)
    return grpc.unary_unary_rpc_method_handler(
        lambda _req, _ctx: None, response_serializer=_nothing
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    pki = make_pki(tmp_path_factory.mktemp("pki") / "pki")

    def register(server: grpc.Server) -> list[str]:
        by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for name, cs, ss in METHODS:
            service, method = name.lstrip("/").split("/")
            by_service.setdefault(service, {})[method] = _echo(name, cs, ss)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]
        )
        return list(by_service)

    running = create_server("127.0.0.1:0", PartyCredentials.load(pki / "coordinator"), register)
    yield running, pki
    running.stop(0)


def test_every_rpc_is_in_the_table_and_the_table_names_only_rpcs() -> None:
    names = {name for name, _, _ in METHODS}
    assert names - set(ALLOWED_ROLES) == set(), "an RPC nobody decided the callers of"
    assert set(ALLOWED_ROLES) - names == set(), "a table row for an RPC that does not exist"
    assert all(roles <= set(ROLES) for roles in ALLOWED_ROLES.values())
    assert allowed_roles("/accord.v1.Nope/Nothing") == frozenset()


@pytest.mark.parametrize("role", ROLES)
def test_every_rpc_with_every_role(server: tuple[RunningServer, Path], role: str) -> None:
    running, pki = server
    creds = PartyCredentials.load(pki / PARTY_OF_ROLE[role])
    with creds.channel(f"127.0.0.1:{running.port}", "coordinator") as channel:
        for name, cs, ss in METHODS:
            identity = (lambda b: b, lambda b: b)
            if cs and ss:
                call: Any = channel.stream_stream(name, *identity)
                do = lambda c=call: list(c(iter([b""]), timeout=10))  # noqa: E731
            elif ss:
                call = channel.unary_stream(name, *identity)
                do = lambda c=call: list(c(b"", timeout=10))  # noqa: E731
            elif cs:
                call = channel.stream_unary(name, *identity)
                do = lambda c=call: c(iter([b""]), timeout=10)  # noqa: E731
            else:
                call = channel.unary_unary(name, *identity)
                do = lambda c=call: c(b"", timeout=10)  # noqa: E731
            if role in ALLOWED_ROLES[name]:
                do()  # goes through to the handler
            else:
                with pytest.raises(grpc.RpcError) as refused:
                    do()
                error: Any = refused.value
                assert error.code() == grpc.StatusCode.PERMISSION_DENIED, name
                assert f"the {role} role, which may not call {name}" in error.details()


def test_a_certificate_without_a_role_is_unauthenticated(
    server: tuple[RunningServer, Path], tmp_path: Path
) -> None:
    """A certificate from before roles were bound in (the same CA, no role): refused."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from accord.crypto.pki import new_private_key

    running, pki = server
    ca_key = serialization.load_pem_private_key((pki / "ca" / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca" / "ca.crt").read_bytes())
    key_pem = new_private_key()
    key = serialization.load_pem_private_key(key_pem, None)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pay")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pay")]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    creds = PartyCredentials(
        "pay",
        (pki / "ca" / "ca.crt").read_bytes(),
        cert.public_bytes(serialization.Encoding.PEM),
        key_pem,
    )
    with creds.channel(f"127.0.0.1:{running.port}", "coordinator") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/accord.v1.Registry/GetRegistry", lambda b: b, lambda b: b)(
                b"", timeout=10
            )
    error: Any = refused.value
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "carries no party role" in error.details()
