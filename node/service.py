"""The node as a library: its identity, its store and the registry it has accepted.

The gRPC servicer in :mod:`accord.node.server` is a thin layer over this class; tests and the
CLI can call it directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from accord.clock import Clock, system_clock
from accord.crypto.keys import NoteVerifier
from accord.errors import Conflict, NotPermitted, NotReady
from accord.node import store
from accord.node.keys import NodeKeys
from accord.node.models import AcceptedRegistry
from accord.proto.v1 import registry_pb2
from accord.registry import (
    FeatureColumn,
    NodeDescriptor,
    RegistryView,
    descriptor_to_proto,
    sign_registration,
    verify_registry,
)


@dataclass(frozen=True)
class NodeInfo:
    channel: str
    role: str
    schema: tuple[FeatureColumn, ...]
    customers: int
    registry_version: int
    registry_nodes: int


class Node:
    """One channel's node."""

    def __init__(
        self,
        engine: Engine,
        *,
        channel: str,
        role: str,
        keys: NodeKeys,
        coordinator_key: NoteVerifier,
        coordinator_party: str = "coordinator",
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.role = role
        self.keys = keys
        self.coordinator_key = coordinator_key
        self.coordinator_party = coordinator_party
        self._clock = clock
        self._view: RegistryView | None = None  # cached; replaced whenever one is accepted
        self._accepting = threading.Lock()

    def schema(self) -> tuple[FeatureColumn, ...]:
        return store.schema(self.engine)

    def descriptor(self, endpoint: str, certificate_pem: bytes) -> NodeDescriptor:
        columns = self.schema()
        if not columns:
            raise NotReady(
                f"node {self.channel!r} has no data yet: run `accord node import` before serving"
            )
        return NodeDescriptor(
            channel=self.channel,
            role=self.role,
            identity_key=self.keys.identity.verifier.public_key,
            kx_key=self.keys.kx.public_key,
            certificate_pem=certificate_pem,
            schema=columns,
            endpoint=endpoint,
        )

    def registration(self, endpoint: str, certificate_pem: bytes) -> registry_pb2.RegisterRequest:
        reg = descriptor_to_proto(self.descriptor(endpoint, certificate_pem))
        return sign_registration(reg, self.keys.identity)

    def registry(self) -> RegistryView | None:
        """The newest registry this node verified (verified again when read from the store)."""
        if self._view is not None:
            return self._view
        with Session(self.engine) as session:
            row = session.exec(
                select(AcceptedRegistry).order_by(col(AcceptedRegistry.version).desc())
            ).first()
        if row is None:
            return None
        signed = registry_pb2.SignedRegistry(document=row.document, signature=row.signature)
        self._view = verify_registry(signed, self.coordinator_key)
        return self._view

    def feature_peers(self) -> dict[str, bytes]:
        """Each feature node's X25519 key, from the newest registry this node verified."""
        view = self.registry()
        return (
            {} if view is None else {n.channel: n.kx_key for n in view.nodes if n.role == "feature"}
        )

    def is_registered(self, party: str) -> bool:
        """Whether ``party`` is a node of the newest registry this node verified."""
        view = self.registry()
        return view is not None and view.node(party) is not None

    def accept_registry(self, signed: registry_pb2.SignedRegistry, *, sender: str) -> int:
        """Verify a signed registry and keep it if it is newer; refuse rollback and forks."""
        if sender != self.coordinator_party:
            raise NotPermitted(
                f"only {self.coordinator_party!r} publishes the registry; {sender!r} may not"
            )
        view = verify_registry(signed, self.coordinator_key)
        # One at a time: the coordinator's reply to our registration and its push of the same
        # version can arrive together.
        with self._accepting, Session(self.engine) as session:
            newest = session.exec(
                select(AcceptedRegistry).order_by(col(AcceptedRegistry.version).desc())
            ).first()
            if newest is not None and view.version < newest.version:
                raise NotReady(
                    f"registry version {view.version} is older than the accepted version "
                    f"{newest.version}; refusing to roll back"
                )
            if newest is not None and view.version == newest.version:
                if newest.document != signed.document:
                    raise Conflict(
                        f"two different registries claim version {view.version}: the "
                        "coordinator is equivocating; keeping the first"
                    )
                return view.version
            session.add(
                AcceptedRegistry(
                    version=view.version,
                    document=signed.document,
                    signature=signed.signature,
                    accepted_at=int(self._clock()),
                )
            )
            session.commit()
            if self._view is None or self._view.version < view.version:
                self._view = view
        return view.version

    def info(self) -> NodeInfo:
        view = self.registry()
        return NodeInfo(
            channel=self.channel,
            role=self.role,
            schema=self.schema(),
            customers=store.customer_count(self.engine),
            registry_version=view.version if view else 0,
            registry_nodes=len(view.nodes) if view else 0,
        )
