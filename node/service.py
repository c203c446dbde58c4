"""The node as a library: its identity, its store and the registry it has accepted.

The gRPC servicer in :mod:`accord.node.server` is a thin layer over this class; tests and the
CLI can call it directly.
"""

from __future__ import annotations

import hmac
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
    sign_exchange_keys,
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
        network_ca: bytes,
        coordinator_party: str = "coordinator",
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.role = role
        self.keys = keys
        self.coordinator_key = coordinator_key
        self.network_ca = network_ca  # PEM: checks every registry entry's key statement
        self.coordinator_party = coordinator_party
        self._clock = clock
        self._view: RegistryView | None = None  # cached; replaced whenever one is accepted
        self._accepting = threading.Lock()

    def schema(self) -> tuple[FeatureColumn, ...]:
        return store.schema(self.engine)

    def descriptor(self, endpoint: str, certificate_pem: bytes, key_pem: bytes) -> NodeDescriptor:
        """This node's registry entry; ``key_pem`` (the certificate's key) signs its keys."""
        columns = self.schema()
        if not columns:
            raise NotReady(
                f"node {self.channel!r} has no data yet: run `accord node import` before serving"
            )
        identity_key = self.keys.identity.verifier.public_key
        kx_key = self.keys.kx.public_key
        return NodeDescriptor(
            channel=self.channel,
            role=self.role,
            identity_key=identity_key,
            kx_key=kx_key,
            certificate_pem=certificate_pem,
            schema=columns,
            endpoint=endpoint,
            key_statement=sign_exchange_keys(
                key_pem,
                ca_pem=self.network_ca,
                channel=self.channel,
                role=self.role,
                identity_key=identity_key,
                kx_key=kx_key,
            ),
        )

    def registration(
        self, endpoint: str, certificate_pem: bytes, key_pem: bytes
    ) -> registry_pb2.RegisterRequest:
        reg = descriptor_to_proto(self.descriptor(endpoint, certificate_pem, key_pem))
        return sign_registration(reg, self.keys.identity)

    def _verify(self, signed: registry_pb2.SignedRegistry) -> RegistryView:
        """The coordinator's signature, each entry's key statement (entries that fail are left
        out), and this node's own entry: refused unless it carries this node's own keys."""
        view = verify_registry(signed, self.coordinator_key, ca_pem=self.network_ca)
        refused = view.refusal(self.channel)
        if refused is not None:
            raise NotPermitted(
                f"registry version {view.version} lists {self.channel!r} with keys this node "
                f"did not sign ({refused.reason}); refusing it"
            )
        own = view.node(self.channel)
        if own is not None and not (
            hmac.compare_digest(own.kx_key, self.keys.kx.public_key)
            and hmac.compare_digest(own.identity_key, self.keys.identity.verifier.public_key)
        ):
            raise NotPermitted(
                f"registry version {view.version} lists {self.channel!r} with keys that are not "
                "this node's own; refusing it (the node registers again to publish its keys)"
            )
        return view

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
        self._view = self._verify(signed)
        return self._view

    def feature_peers(self) -> dict[str, bytes]:
        """Each feature node's X25519 key, from the newest registry this node verified: only
        keys the node's own certificate signed (a round naming any other node is refused)."""
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
        view = self._verify(signed)
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
