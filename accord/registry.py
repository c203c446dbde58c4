"""The network registry as both sides see it: node descriptors and the signed document.

The coordinator signs the registry; a node acts on it only after the signature verifies
against the coordinator key it was provisioned with (``coordinator.vkey`` from the PKI).
Everything that crosses the wire is validated here, once, into plain typed data.

The coordinator's signature says only what the coordinator relays. Each entry's exchange keys
carry the node's own statement, signed by its certificate's key (:mod:`accord.crypto.key_binding`);
a registry view keeps only entries whose statement verifies under the network's CA, so a key the
coordinator swapped in is never used to derive a mask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from accord.crypto import key_binding
from accord.crypto.errors import CryptoError
from accord.crypto.keys import (
    NoteSigner,
    NoteVerifier,
    check_ed25519_public,
    check_x25519_public,
    verify_ed25519,
)
from accord.crypto.pki import certificate_common_name, check_party_name
from accord.errors import InvalidInput, NotAuthenticated, NotPermitted
from accord.proto.v1 import common_pb2, registry_pb2
from accord.schema import MAX_COLUMNS, check_column_name

REGISTRATION_DOMAIN = b"accord.v1.NodeRegistration\n"
REGISTRY_DOMAIN = b"accord.v1.RegistryDocument\n"
MAX_REGISTRATION_BYTES = 64 * 1024
MAX_REGISTRY_BYTES = 4 * 1024 * 1024
ENDPOINT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:]{2,39}\]):(?P<port>\d{1,5})$")

ROLES = {common_pb2.ROLE_FEATURE: "feature", common_pb2.ROLE_LABEL: "label"}
FEATURE_TYPES = {
    common_pb2.FEATURE_TYPE_FLOAT: "float",
    common_pb2.FEATURE_TYPE_INT: "int",
    common_pb2.FEATURE_TYPE_CATEGORICAL: "categorical",
    common_pb2.FEATURE_TYPE_BOOL: "bool",
}
ROLE_BY_NAME = {v: k for k, v in ROLES.items()}
FEATURE_TYPE_BY_NAME = {v: k for k, v in FEATURE_TYPES.items()}


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    type: str


@dataclass(frozen=True)
class NodeDescriptor:
    """What the registry says about one node. Constructed only from validated input."""

    channel: str
    role: str
    identity_key: bytes
    kx_key: bytes
    certificate_pem: bytes
    schema: tuple[FeatureColumn, ...]
    endpoint: str
    # the certificate key's signature binding identity_key and kx_key to this channel
    key_statement: bytes


@dataclass(frozen=True)
class RefusedEntry:
    """A registry entry left out of a view: its keys are not the certified node's."""

    channel: str
    reason: str


@dataclass(frozen=True)
class RegistryView:
    """A registry document whose signature has been verified, holding only the entries whose
    exchange keys the node's own certificate vouches for (the rest are in ``refused``)."""

    version: int
    coordinator_key: str
    issued_at: int
    nodes: tuple[NodeDescriptor, ...]
    registered_at: tuple[int, ...]
    refused: tuple[RefusedEntry, ...] = ()

    def node(self, channel: str) -> NodeDescriptor | None:
        return next((n for n in self.nodes if n.channel == channel), None)

    def refusal(self, channel: str) -> RefusedEntry | None:
        return next((r for r in self.refused if r.channel == channel), None)


def reject_unknown_fields(message: Message, path: str) -> None:
    """Refuse fields this version does not define: nothing may ride along unseen."""
    if len(UnknownFieldSet(message)):
        raise InvalidInput(
            f"{path} carries fields this API does not define; send only the documented fields"
        )
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            for i, item in enumerate(value):
                reject_unknown_fields(item, f"{path}.{field.name}[{i}]")
        else:
            reject_unknown_fields(value, f"{path}.{field.name}")


def descriptor_from_proto(reg: registry_pb2.NodeRegistration) -> NodeDescriptor:
    """Validate a registration field by field; every error names the field and the fix."""
    reject_unknown_fields(reg, "registration")
    try:
        channel = check_party_name(reg.channel)
    except CryptoError as exc:
        raise InvalidInput(f"registration.channel: {exc}") from exc
    if reg.role not in ROLES:
        raise InvalidInput(
            f"registration.role: {reg.role} is not a known role; use ROLE_FEATURE or ROLE_LABEL"
        )
    try:
        check_ed25519_public(reg.identity_key)
    except CryptoError as exc:
        raise InvalidInput(f"registration.identity_key: {exc}") from exc
    try:
        check_x25519_public(reg.kx_key)
    except CryptoError as exc:
        raise InvalidInput(f"registration.kx_key: {exc}") from exc
    try:
        cn = certificate_common_name(reg.certificate_pem)
    except CryptoError as exc:
        raise InvalidInput(f"registration.certificate_pem: {exc}") from exc
    if cn != channel:
        raise InvalidInput(
            f"registration.certificate_pem is issued to {cn!r}, not to channel {channel!r}"
        )
    if len(reg.key_statement) > key_binding.MAX_STATEMENT_BYTES:
        raise InvalidInput(
            f"registration.key_statement is {len(reg.key_statement)} bytes; a P-256 signature "
            f"is at most {key_binding.MAX_STATEMENT_BYTES}"
        )
    if not 1 <= len(reg.schema) <= MAX_COLUMNS:
        raise InvalidInput(f"registration.schema: offer between 1 and {MAX_COLUMNS} columns")
    columns: list[FeatureColumn] = []
    for i, spec in enumerate(reg.schema):
        check_column_name(spec.name, f"registration.schema[{i}].name")
        if spec.type not in FEATURE_TYPES:
            raise InvalidInput(
                f"registration.schema[{i}].type: {spec.type} is not a feature type; use "
                "FEATURE_TYPE_FLOAT, _INT, _CATEGORICAL or _BOOL"
            )
        columns.append(FeatureColumn(spec.name, FEATURE_TYPES[spec.type]))
    if len({c.name for c in columns}) != len(columns):
        raise InvalidInput("registration.schema: column names must be unique")
    match = ENDPOINT.match(reg.endpoint)
    if not match or not 0 < int(match["port"]) < 65536:
        raise InvalidInput(
            f"registration.endpoint {reg.endpoint!r} must be host:port with a port in 1-65535"
        )
    return NodeDescriptor(
        channel=channel,
        role=ROLES[reg.role],
        identity_key=bytes(reg.identity_key),
        kx_key=bytes(reg.kx_key),
        certificate_pem=bytes(reg.certificate_pem),
        schema=tuple(columns),
        endpoint=reg.endpoint,
        key_statement=bytes(reg.key_statement),
    )


def descriptor_to_proto(node: NodeDescriptor) -> registry_pb2.NodeRegistration:
    return registry_pb2.NodeRegistration(
        channel=node.channel,
        role=ROLE_BY_NAME[node.role],
        identity_key=node.identity_key,
        kx_key=node.kx_key,
        certificate_pem=node.certificate_pem,
        schema=[
            common_pb2.FeatureSpec(name=c.name, type=FEATURE_TYPE_BY_NAME[c.type])
            for c in node.schema
        ],
        endpoint=node.endpoint,
        key_statement=node.key_statement,
    )


def sign_exchange_keys(
    key_pem: bytes, *, ca_pem: bytes, channel: str, role: str, identity_key: bytes, kx_key: bytes
) -> bytes:
    """The node's statement for its registration, signed with its certificate's key."""
    return key_binding.sign_statement(
        key_pem,
        ca_pem=ca_pem,
        channel=channel,
        role=role,
        identity_key=identity_key,
        kx_key=kx_key,
    )


def check_exchange_keys(node: NodeDescriptor, ca_pem: bytes) -> None:
    """Raise :class:`NotPermitted` unless ``node``'s own certificate, issued by the network's
    CA to its channel and role, signed its identity and exchange keys."""
    try:
        key_binding.check_statement(
            node.key_statement,
            certificate_pem=node.certificate_pem,
            ca_pem=ca_pem,
            channel=node.channel,
            role=node.role,
            identity_key=node.identity_key,
            kx_key=node.kx_key,
        )
    except CryptoError as exc:
        raise NotPermitted(
            f"the registry entry for {node.channel!r} is refused: {exc}; its keys may not be "
            "the node's own (the node re-registers to sign them)"
        ) from exc


def registration_message(reg: registry_pb2.NodeRegistration) -> bytes:
    return REGISTRATION_DOMAIN + reg.SerializeToString(deterministic=True)


def sign_registration(
    reg: registry_pb2.NodeRegistration, identity: NoteSigner
) -> registry_pb2.RegisterRequest:
    return registry_pb2.RegisterRequest(
        registration=reg, proof_of_possession=identity.sign(registration_message(reg))
    )


def verify_registration(request: registry_pb2.RegisterRequest) -> NodeDescriptor:
    """Validate a registration and its proof that the sender holds the identity key."""
    if request.ByteSize() > MAX_REGISTRATION_BYTES:
        raise InvalidInput(
            f"registration is {request.ByteSize()} bytes; the limit is {MAX_REGISTRATION_BYTES}"
            " (send the schema's names and types only)"
        )
    reject_unknown_fields(request, "request")
    descriptor = descriptor_from_proto(request.registration)
    try:
        verify_ed25519(
            descriptor.identity_key,
            request.proof_of_possession,
            registration_message(request.registration),
            what="the registration",
        )
    except CryptoError as exc:
        raise NotAuthenticated(
            "proof_of_possession does not verify with registration.identity_key: sign the "
            "registration with the node's identity key"
        ) from exc
    return descriptor


def sign_registry(
    document: registry_pb2.RegistryDocument, signer: NoteSigner
) -> registry_pb2.SignedRegistry:
    body = document.SerializeToString(deterministic=True)
    return registry_pb2.SignedRegistry(document=body, signature=signer.sign(REGISTRY_DOMAIN + body))


def verify_registry(
    signed: registry_pb2.SignedRegistry, coordinator: NoteVerifier, *, ca_pem: bytes
) -> RegistryView:
    """Verify the coordinator's signature, then parse; fails closed on anything odd. Entries
    whose keys their node's certificate (issued by the CA of ``ca_pem``) did not sign are left
    out of the view and listed in ``refused``."""
    if signed.ByteSize() > MAX_REGISTRY_BYTES:
        raise InvalidInput(f"registry is larger than {MAX_REGISTRY_BYTES} bytes")
    try:
        coordinator.verify(signed.signature, REGISTRY_DOMAIN + signed.document)
    except CryptoError as exc:
        raise NotAuthenticated(
            f"the registry's signature does not verify with coordinator key "
            f"{coordinator.name}+{coordinator.key_id.hex()}: refusing it"
        ) from exc
    document = registry_pb2.RegistryDocument()
    try:
        document.ParseFromString(signed.document)
    except DecodeError as exc:
        raise InvalidInput("the signed registry document does not parse") from exc
    if document.coordinator_key != coordinator.encode():
        raise InvalidInput(
            "the registry names a different coordinator key than the one it is signed with"
        )
    nodes: list[NodeDescriptor] = []
    registered_at: list[int] = []
    refused: list[RefusedEntry] = []
    for entry in document.nodes:
        node = descriptor_from_proto(entry.node)
        try:
            check_exchange_keys(node, ca_pem)
        except NotPermitted as exc:
            refused.append(RefusedEntry(node.channel, str(exc)))
            continue
        nodes.append(node)
        registered_at.append(entry.registered_at)
    return RegistryView(
        version=document.version,
        coordinator_key=document.coordinator_key,
        issued_at=document.issued_at,
        nodes=tuple(nodes),
        registered_at=tuple(registered_at),
        refused=tuple(refused),
    )
