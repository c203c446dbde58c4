"""The coordinator's registry of nodes: validated registrations in, signed documents out.

Each node's key statement (its certificate's signature over its exchange keys) is checked
against the caller's certificate at registration, then stored and served exactly as sent: the
coordinator relays the keys, it cannot vouch for keys of its own choosing.
"""

from __future__ import annotations

import json
import threading

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from accord.clock import Clock, system_clock
from accord.coordinator.models import RegisteredNode, RegistryVersion
from accord.crypto.keys import NoteSigner
from accord.crypto.pki import certificate_role, same_certificate
from accord.errors import InvalidInput, NotPermitted
from accord.proto.v1 import registry_pb2
from accord.registry import (
    FeatureColumn,
    NodeDescriptor,
    RegistryView,
    check_exchange_keys,
    descriptor_to_proto,
    sign_registry,
    verify_registry,
)


def _row_to_descriptor(row: RegisteredNode) -> NodeDescriptor:
    return NodeDescriptor(
        channel=row.channel,
        role=row.role,
        identity_key=row.identity_key,
        kx_key=row.kx_key,
        certificate_pem=row.certificate_pem.encode(),
        schema=tuple(FeatureColumn(c["name"], c["type"]) for c in json.loads(row.feature_schema)),
        endpoint=row.endpoint,
        key_statement=row.key_statement,
    )


def _descriptor_to_row(node: NodeDescriptor, registered_at: int) -> RegisteredNode:
    return RegisteredNode(
        channel=node.channel,
        role=node.role,
        identity_key=node.identity_key,
        kx_key=node.kx_key,
        certificate_pem=node.certificate_pem.decode(),
        feature_schema=json.dumps([{"name": c.name, "type": c.type} for c in node.schema]),
        endpoint=node.endpoint,
        registered_at=registered_at,
        key_statement=node.key_statement,
    )


class NodeRegistry:
    """Accepts registrations and publishes a new signed registry version on every change."""

    def __init__(
        self, engine: Engine, signer: NoteSigner, *, ca_pem: bytes, clock: Clock = system_clock
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._ca_pem = ca_pem  # the network's CA: node certificates and their key statements
        self._clock = clock
        self._lock = threading.Lock()  # versions are numbered by one writer at a time
        # The newest verified view: this process is the registry's only writer, so it changes
        # only through register(), which replaces it; readers never re-verify per request.
        self._view: RegistryView | None = None
        self._view_lock = threading.Lock()
        with self._lock, Session(engine) as session:
            if session.exec(select(RegistryVersion)).first() is None:
                self._publish(session)
                session.commit()

    def register(
        self, node: NodeDescriptor, *, peer: str, peer_cert_pem: bytes
    ) -> registry_pb2.SignedRegistry:
        """Add or update ``node``; the caller's TLS identity must be that node."""
        if peer != node.channel:
            raise NotPermitted(
                f"your certificate is issued to {peer!r}; "
                f"it cannot register channel {node.channel!r}"
            )
        if not same_certificate(node.certificate_pem, peer_cert_pem):
            raise InvalidInput(
                "registration.certificate_pem differs from the certificate presented on this "
                "connection: send the certificate you connect with"
            )
        granted = certificate_role(peer_cert_pem)
        if node.role != granted:
            raise NotPermitted(
                f"{peer!r} may register only as {granted} (the role in its certificate), "
                f"not as {node.role}"
            )
        # the certificate is the caller's (checked above): its key must have signed the keys
        check_exchange_keys(node, self._ca_pem)
        with self._lock, Session(self._engine) as session:
            existing = session.get(RegisteredNode, node.channel)
            if node.role == "label":
                holder = session.exec(
                    select(RegisteredNode).where(
                        RegisteredNode.role == "label", RegisteredNode.channel != node.channel
                    )
                ).first()
                if holder is not None:
                    raise NotPermitted(
                        f"channel {holder.channel!r} already holds the label role; a network has "
                        "one label node"
                    )
            if existing is not None and _row_to_descriptor(existing) == node:
                return self._latest(session)
            registered_at = int(self._clock())
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(_descriptor_to_row(node, registered_at))
            session.flush()
            signed = self._publish(session)
            session.commit()
            self._keep(verify_registry(signed, self._signer.verifier, ca_pem=self._ca_pem))
            return signed

    def current(self) -> registry_pb2.SignedRegistry:
        with Session(self._engine) as session:
            return self._latest(session)

    def view(self) -> RegistryView:
        """The newest registry, verified once per version (not once per call)."""
        cached = self._view
        if cached is not None:
            return cached
        return self._keep(
            verify_registry(self.current(), self._signer.verifier, ca_pem=self._ca_pem)
        )

    def _keep(self, view: RegistryView) -> RegistryView:
        """Cache ``view`` unless a newer one is cached already (a racing reader may be stale)."""
        with self._view_lock:
            if self._view is None or self._view.version < view.version:
                self._view = view
            return self._view

    def _latest(self, session: Session) -> registry_pb2.SignedRegistry:
        row = session.exec(
            select(RegistryVersion).order_by(col(RegistryVersion.version).desc())
        ).first()
        assert row is not None, "the registry is created at start"
        return registry_pb2.SignedRegistry(document=row.document, signature=row.signature)

    def _publish(self, session: Session) -> registry_pb2.SignedRegistry:
        last = session.exec(
            select(RegistryVersion).order_by(col(RegistryVersion.version).desc())
        ).first()
        version = 1 if last is None else last.version + 1
        rows = session.exec(select(RegisteredNode).order_by(col(RegisteredNode.channel))).all()
        now = int(self._clock())
        document = registry_pb2.RegistryDocument(
            version=version,
            coordinator_key=self._signer.verifier.encode(),
            nodes=[
                registry_pb2.RegistryEntry(
                    node=descriptor_to_proto(_row_to_descriptor(r)), registered_at=r.registered_at
                )
                for r in rows
            ],
            issued_at=now,
        )
        signed = sign_registry(document, self._signer)
        session.add(
            RegistryVersion(
                version=version, document=signed.document, signature=signed.signature, issued_at=now
            )
        )
        return signed
