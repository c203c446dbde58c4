"""Mutual TLS between parties: every link presents a certificate issued by the network's CA.

A party's credentials live in one folder made by ``accord pki init``: ``ca.crt`` (the network's
CA), ``tls.crt`` and ``tls.key`` (its own certificate, whose common name is the party's name).
Clients pin the name of the party they mean to reach through ``ssl_target_name_override``, so
a node cannot stand in for the coordinator even with a valid certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from accord.errors import ConfigError, NotAuthenticated

CA_FILE = "ca.crt"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

# Transport limit for any message; services enforce tighter, per-method limits themselves so
# that an oversized request gets INVALID_ARGUMENT with a message rather than a bare
# RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

ChannelOptions = Sequence[tuple[str, str | int]]


def _read(directory: Path, name: str) -> bytes:
    path = directory / name
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} is missing: point --pki at a party folder made by `accord pki init`"
        ) from exc


@dataclass(frozen=True)
class PartyCredentials:
    """A party's CA, certificate and private key, as PEM bytes."""

    party: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def load(cls, directory: Path) -> PartyCredentials:
        from accord.crypto.pki import certificate_common_name

        cert = _read(directory, CERT_FILE)
        return cls(
            party=certificate_common_name(cert),
            ca_pem=_read(directory, CA_FILE),
            cert_pem=cert,
            key_pem=_read(directory, KEY_FILE),
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.ca_pem,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )

    def channel(self, target: str, peer: str, options: ChannelOptions = ()) -> grpc.Channel:
        """A channel to ``target`` that accepts only a server certified as ``peer``."""
        return grpc.secure_channel(
            target,
            self.channel_credentials(),
            options=[
                ("grpc.ssl_target_name_override", peer),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                *options,
            ],
        )

    def __repr__(self) -> str:  # keep the private key out of logs and tracebacks
        return f"PartyCredentials(party={self.party!r})"


def peer_party(context: grpc.ServicerContext) -> str:
    """The party name (certificate common name) of the caller of an RPC."""
    names = _auth_values(context, "x509_common_name")
    if len(names) != 1:
        raise NotAuthenticated("the caller presented no client certificate")
    return names[0].decode()


def peer_certificate_pem(context: grpc.ServicerContext) -> bytes:
    """The caller's TLS certificate as PEM, as presented on this connection."""
    pem = _auth_values(context, "x509_pem_cert")
    if len(pem) != 1:
        raise NotAuthenticated("the caller presented no client certificate")
    return pem[0]


def _auth_values(context: grpc.ServicerContext, key: str) -> list[bytes]:
    values: bytes | list[bytes] = context.auth_context().get(key) or []
    if isinstance(values, bytes):
        return [values]
    return [bytes(v) for v in values]
