"""The node process: keys, store, server, then registration with the coordinator."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from prometheus_client import CollectorRegistry

from accord.errors import ConfigError, Unavailable
from accord.ledger_writer import LedgerWriter
from accord.node.alignment import NodeAlignment
from accord.node.alignment_server import NodeAlignmentServicer
from accord.node.consent import ConsentBook
from accord.node.consent_credentials import CredentialIssuer
from accord.node.consent_proofs import UseProofs
from accord.node.consent_server import ConsentServicer
from accord.node.gate import ConsentGate
from accord.node.keys import load_or_create_issuer_key, load_or_create_keys
from accord.node.ledger_watch import LedgerWatcher, start_ledger_watch
from accord.node.metrics import NodeCollector
from accord.node.network_stop import NetworkStop
from accord.node.outbox import Outbox, OutboxDrainer, ProvenLookup
from accord.node.own_spend import OwnSpend
from accord.node.scoring import ScoringParticipant
from accord.node.scoring_server import NodeScoringServicer
from accord.node.server import registrar
from accord.node.service import Node
from accord.node.supernode import SuperNodeSettings, SuperNodeSupervisor
from accord.node.witness import Witness
from accord.pki_layout import COORDINATOR, load_audit_recipient, load_coordinator_verifier
from accord.proto.v1 import registry_pb2_grpc
from accord.rpc.client import call_with_retry, describe_rpc_error
from accord.rpc.endpoint import (
    METRICS_ENDPOINT_FILE,
    advertised_endpoint,
    clear_endpoint,
    write_endpoint,
)
from accord.rpc.metrics import MetricsServer, serve_metrics
from accord.rpc.server import RunningServer, create_server, serve_until_signalled
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

log = structlog.get_logger(__name__)

REGISTER_DEADLINE_S = 60.0


@dataclass(frozen=True)
class NodeConfig:
    channel: str
    role: str
    data_dir: Path
    pki_dir: Path
    coordinator: str = "127.0.0.1:50051"
    listen: str = "127.0.0.1:0"
    db_url: str | None = None
    advertise: str | None = None  # host:port others call, when it differs from --listen
    metrics_listen: str | None = None  # host:port of the Prometheus endpoint; None: none
    # a feature node runs its training participant (a SuperNode) when the coordinator has a Fleet
    train: bool = True
    # scoring uses need the customer's consent proof (accord.node.consent_proofs)
    require_consent_proofs: bool = False

    def database(self) -> str:
        return self.db_url or sqlite_url(self.data_dir / "node.db")


def open_node(config: NodeConfig) -> tuple[Node, PartyCredentials]:
    """The node library over its store and keys, without serving (used by CLI commands too)."""
    if config.role not in ("feature", "label"):
        raise ConfigError(f"--role must be 'feature' or 'label', not {config.role!r}")
    credentials = PartyCredentials.load(config.pki_dir)
    if credentials.party != config.channel:
        raise ConfigError(
            f"{config.pki_dir} holds {credentials.party!r}'s certificate, not {config.channel!r}'s"
        )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database())
    upgrade(engine, "node")
    node = Node(
        engine,
        channel=config.channel,
        role=config.role,
        keys=load_or_create_keys(config.data_dir, config.channel),
        coordinator_key=load_coordinator_verifier(config.pki_dir),
        network_ca=credentials.ca_pem,
        coordinator_party=COORDINATOR,
    )
    return node, credentials


@dataclass
class RunningNode:
    config: NodeConfig
    node: Node
    server: RunningServer
    ledger: LedgerWriter
    book: ConsentBook
    gate: ConsentGate
    alignment: NodeAlignment
    drainer: OutboxDrainer | None = None
    metrics: MetricsServer | None = None
    watch: LedgerWatcher | None = None
    supernode: SuperNodeSupervisor | None = None

    @property
    def endpoint(self) -> str:
        return advertised_endpoint(self.config.listen, self.server.port, self.config.advertise)

    def stop(self) -> None:
        clear_endpoint(self.config.data_dir)
        clear_endpoint(self.config.data_dir, METRICS_ENDPOINT_FILE)
        if self.supernode is not None:
            self.supernode.stop()
        self.server.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.drainer is not None:
            self.drainer.stop()
        if self.watch is not None:
            self.watch.stop()
        self.ledger.close()


def register_with_coordinator(
    node: Node, credentials: PartyCredentials, coordinator: str, endpoint: str
) -> int:
    """Register, verify the signed registry the coordinator answers with, and accept it."""
    request = node.registration(endpoint, credentials.cert_pem, credentials.key_pem)
    with credentials.channel(coordinator, COORDINATOR) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        try:
            reply = call_with_retry(
                lambda: stub.Register(request, timeout=10), deadline_s=REGISTER_DEADLINE_S
            )
        except grpc.RpcError as err:
            raise Unavailable(describe_rpc_error(err, f"coordinator at {coordinator}")) from err
    return node.accept_registry(reply.registry, sender=COORDINATOR)


def start_node(config: NodeConfig) -> RunningNode:
    advertised_endpoint(config.listen, 1, config.advertise)  # refuse an uncallable address first
    node, credentials = open_node(config)
    # fail early if nothing was imported
    node.descriptor("127.0.0.1:1", credentials.cert_pem, credentials.key_pem)
    ledger = LedgerWriter(credentials, config.coordinator, COORDINATOR)
    auditor = load_audit_recipient(config.pki_dir, now=dt.datetime.now(dt.UTC))
    if auditor is None:
        log.warning(
            "no auditor.crt in the node's folder: data uses are logged unlinkably but the "
            "auditor's violations check cannot verify them (pki install --auditor-cert)"
        )
    gate = ConsentGate(node.engine, config.channel, ledger, auditor=auditor)
    alignment = NodeAlignment(
        node.engine, config.channel, config.role, gate, credentials, node.coordinator_key
    )
    network = NetworkStop(alignment, credentials, config.coordinator)
    # what the node owes the ledger and the network survives outages and crashes (one try per
    # pass: the outbox's drainer does the retrying)
    outbox = Outbox(
        node.engine,
        LedgerWriter(credentials, config.coordinator, COORDINATOR, retry_s=0),
        block=network.block,
        lookup=ProvenLookup(ledger, node.coordinator_key),
    )
    book = ConsentBook(
        node.engine, config.channel, ledger, outbox=outbox, row_keys=alignment.row_keys_of
    )
    issuer_sk = load_or_create_issuer_key(config.data_dir)
    consent = ConsentServicer(
        book, ledger, node.coordinator_key, issuer=CredentialIssuer(book, issuer_sk)
    )
    alignment_servicer = NodeAlignmentServicer(alignment, COORDINATOR, node.is_registered)
    own_spend = OwnSpend(node.engine, config.channel, gate)
    proofs = UseProofs(
        node.engine,
        config.channel,
        issuer_sk,
        ledger,
        required=config.require_consent_proofs,
    )
    prometheus = CollectorRegistry()  # this process's own, so in-process parties never mix
    prometheus.register(NodeCollector(node.engine))
    metrics = serve_metrics(config.metrics_listen, prometheus) if config.metrics_listen else None
    server = create_server(
        config.listen,
        credentials,
        registrar(
            node,
            consent,
            alignment_servicer,
            gate,
            alignment,
            Witness(node.engine, node.keys.identity, [node.coordinator_key]),
            NodeScoringServicer(
                ScoringParticipant(
                    node.engine,
                    config.channel,
                    gate,
                    alignment,
                    node.keys.kx,
                    None,
                    node.coordinator_key,
                    peers_source=node.feature_peers,
                    own_spend=own_spend,
                    proofs=proofs,
                ),
                COORDINATOR,
            ),
            own_spend,
        ),
        metrics=prometheus,
    )
    running = RunningNode(config, node, server, ledger, book, gate, alignment, metrics=metrics)
    try:
        version = register_with_coordinator(node, credentials, config.coordinator, running.endpoint)
    except BaseException:
        server.stop(grace=0)
        if metrics is not None:
            metrics.stop()
        raise
    network.catch_up()
    running.drainer = OutboxDrainer(outbox)
    running.drainer.start()  # first delivers what was owed before a crash or an outage
    # every checkpoint the coordinator serves must extend the last one this node verified
    running.watch = start_ledger_watch(node.engine, ledger, node.coordinator_key)
    if config.train and config.role == "feature":
        running.supernode = SuperNodeSupervisor(
            SuperNodeSettings(
                config.channel, config.data_dir, config.pki_dir, config.coordinator, config.db_url
            ),
            credentials,
        )
        running.supernode.start()
    if metrics is not None:
        write_endpoint(config.data_dir, metrics.endpoint, METRICS_ENDPOINT_FILE)
    write_endpoint(config.data_dir, running.endpoint)
    log.info("node serving", channel=config.channel, endpoint=running.endpoint, registry=version)
    return running


def _load_models_library() -> None:
    """Import torch and the bottom models off the start-up path, before a request needs them
    (a score's deadline is a second; importing torch takes longer on a small machine)."""
    import accord.node.training  # noqa: F401


def run_node(config: NodeConfig) -> None:
    running = start_node(config)
    # not a daemon: a process asked to stop while torch is still loading waits for the import
    # to finish (a daemon thread importing C extensions at interpreter exit aborts it)
    threading.Thread(target=_load_models_library, name="warm-up", daemon=False).start()
    serve_until_signalled(running.server, on_stop=running.stop)
