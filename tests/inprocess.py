"""A whole network inside the test process: real stores, real gRPC servers over mTLS on
loopback, the real coordinator libraries; only process boundaries are missing. Fast enough to
run many protocol cases (the integration tests cover the same paths across real processes)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accord.consent.events import Event, encode
from accord.coordinator.alignment import AlignmentOrchestrator
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.registry import NodeRegistry
from accord.data.channel_file import ChannelTable
from accord.data.purchase_file import PurchaseLog
from accord.ledger_writer import batches
from accord.node import store
from accord.node.alignment import NodeAlignment
from accord.node.alignment_server import NodeAlignmentServicer
from accord.node.consent import ConsentBook, ConsentGrant, default_terms
from accord.node.consent_server import ConsentServicer
from accord.node.gate import ConsentGate
from accord.node.keys import load_or_create_keys
from accord.node.own_spend import OwnSpend
from accord.node.server import registrar
from accord.node.service import Node
from accord.node.training import TrainingParticipant
from accord.pki_layout import (
    load_audit_recipient,
    load_coordinator_signer,
    load_coordinator_verifier,
)
from accord.rpc.server import RunningServer, create_server
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine
from accord.store.migrate import upgrade


class InProcessLedger:
    def __init__(self, ledger: Ledger, node: str) -> None:
        self.ledger, self.node = ledger, node

    def append(self, events: Sequence[Event]) -> list[int]:
        out: list[int] = []
        for batch in batches([encode(e) for e in events]):  # the same limits as over gRPC
            out.extend(a.index for a in self.ledger.append(batch, appended_by=self.node))
        return out


@dataclass
class NodeParts:
    channel: str
    node: Node
    book: ConsentBook
    gate: ConsentGate
    alignment: NodeAlignment
    server: RunningServer

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@dataclass
class Network:
    ledger: Ledger
    registry: NodeRegistry
    orchestrator: AlignmentOrchestrator
    nodes: dict[str, NodeParts] = field(default_factory=dict)

    def stop(self) -> None:
        for parts in self.nodes.values():
            parts.server.stop(grace=0)
        self.ledger.stop()


def build(
    tmp: Path,
    pki: Path,
    tables: Mapping[str, ChannelTable | PurchaseLog],
    consents: dict[str, dict[str, Sequence[str]]],
    *,
    as_of: dt.date | None = None,
) -> Network:
    """``tables`` per channel ('label' is the label node): a table of columns, or a purchase
    log whose features derive up to ``as_of``; ``consents[channel][ref]`` purposes."""
    signer = load_coordinator_signer(pki / "coordinator")
    coord = make_engine(f"sqlite:///{tmp / 'coordinator.db'}")
    upgrade(coord, "coordinator")
    ledger = Ledger(coord, signer, checkpoint_interval_s=0.2)
    ledger.start()
    credentials = PartyCredentials.load(pki / "coordinator")
    registry = NodeRegistry(coord, signer, ca_pem=credentials.ca_pem)
    orchestrator = AlignmentOrchestrator(coord, ledger, signer, credentials, registry.view)
    network = Network(ledger, registry, orchestrator)
    for channel, table in tables.items():
        role = "label" if channel == "label" else "feature"
        creds = PartyCredentials.load(pki / channel)
        engine = make_engine(f"sqlite:///{tmp / (channel + '.db')}")
        upgrade(engine, "node")
        if isinstance(table, PurchaseLog):
            assert as_of is not None, "a purchase log needs its cut-off day"
            store.import_purchases(engine, table, channel, as_of)
        else:
            store.import_table(engine, table, channel)
        keys = load_or_create_keys(tmp / channel, channel)
        node = Node(
            engine,
            channel=channel,
            role=role,
            keys=keys,
            coordinator_key=load_coordinator_verifier(pki / channel),
            network_ca=creds.ca_pem,
        )
        writer = InProcessLedger(ledger, channel)
        book = ConsentBook(engine, channel, writer)
        auditor = load_audit_recipient(pki / channel, now=dt.datetime.now(dt.UTC))
        gate = ConsentGate(engine, channel, writer, auditor=auditor)
        alignment = NodeAlignment(engine, channel, role, gate, creds, node.coordinator_key)
        servicer = NodeAlignmentServicer(alignment, "coordinator", node.is_registered)
        server = create_server(
            "127.0.0.1:0",
            creds,
            registrar(
                node,
                ConsentServicer(book, writer, node.coordinator_key),
                servicer,
                gate,
                alignment,
                own_spend=OwnSpend(engine, channel, gate),
            ),
        )  # type: ignore[arg-type]
        parts = NodeParts(channel, node, book, gate, alignment, server)
        network.nodes[channel] = parts
        registry.register(
            node.descriptor(parts.endpoint, creds.cert_pem, creds.key_pem),
            peer=channel,
            peer_cert_pem=creds.cert_pem,
        )
        grants = [
            ConsentGrant(ref, default_terms(purposes, controller=channel, now=int(time.time())))
            for ref, purposes in consents.get(channel, {}).items()
        ]
        if grants:
            book.grant(grants)
    signed = registry.current()
    for parts in network.nodes.values():
        parts.node.accept_registry(signed, sender="coordinator")
    return network


def training_participant(network: Network, channel: str) -> TrainingParticipant:
    """``channel``'s training participant as a fresh node process builds it: its store, its
    gate, its key-agreement key and the feature nodes' keys from the registry."""
    from accord.node.training import GatedStoreData, SqlStateStore

    view = network.registry.view()
    peers = {n.channel: n.kx_key for n in view.nodes if n.role == "feature"}
    parts = network.nodes[channel]
    engine = parts.node.engine
    return TrainingParticipant(
        channel,
        GatedStoreData(engine, parts.gate),
        SqlStateStore(engine),
        parts.node.keys.kx,
        peers,
    )


class DirectLink:
    """A NodeLink that calls training participants directly (no Flower): for protocol tests."""

    def __init__(self, participants: dict[str, "TrainingParticipant"]) -> None:  # noqa: UP037
        self.participants = participants
        # every masked matrix the coordinator received, with the call that asked for it
        self.received: list[tuple[object, object]] = []

    def start(self, nodes, run, alignment_run, config, seeds):  # type: ignore[no-untyped-def]
        return {n: self.participants[n].start(run, alignment_run, config, seeds[n]) for n in nodes}

    def embed(self, run, calls):  # type: ignore[no-untyped-def]
        from accord.coordinator.training import NodeFailed, Withdrawal
        from accord.node.training import Withdrawn

        out = {}
        for n, c in calls.items():
            try:
                out[n] = self.participants[n].embed(
                    run, c.round_id, c.purpose, c.plan, c.n_rows, c.row_keys
                )
                self.received.append((c, out[n]))
            except Withdrawn as exc:
                out[n] = Withdrawal(exc.row_keys)
            except Exception as exc:  # a node that breaks is a node that dropped
                out[n] = NodeFailed(str(exc))
        return out

    def backprop(self, run, round_no, calls):  # type: ignore[no-untyped-def]
        return {
            n: self.participants[n].backprop(run, round_no, k, g) for n, (k, g) in calls.items()
        }

    def finish(self, nodes, run, model_id):  # type: ignore[no-untyped-def]
        for n in nodes:
            self.participants[n].finish(run, model_id)
        return dict.fromkeys(nodes, True)
