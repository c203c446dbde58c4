"""The coordinator process: store, registry, publisher and gRPC server, wired together."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry

from accord.coordinator.admission import MembershipGate
from accord.coordinator.alignment import AlignmentOrchestrator
from accord.coordinator.blocking import RowBlocker
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.metrics import CoordinatorMetrics
from accord.coordinator.policy import load_policy
from accord.coordinator.publisher import RegistryPublisher
from accord.coordinator.registry import NodeRegistry
from accord.coordinator.scoring import ScoringService
from accord.coordinator.server import registrar
from accord.coordinator.training_server import TrainingServicer
from accord.pki_layout import MEMBERS_FILE, load_coordinator_signer
from accord.rpc.endpoint import METRICS_ENDPOINT_FILE, clear_endpoint, host_of, write_endpoint
from accord.rpc.metrics import MetricsServer, serve_metrics
from accord.rpc.server import RunningServer, create_server, serve_until_signalled
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

if TYPE_CHECKING:
    from accord.coordinator.fleet import Fleet

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CoordinatorConfig:
    data_dir: Path
    pki_dir: Path
    listen: str = "127.0.0.1:50051"
    db_url: str | None = None
    # Where the log is also written in the C2SP tlog-tiles layout; None: data_dir/tiles.
    tiles: Path | None = None
    # The operator-signed membership list; None: members.json in the coordinator's PKI folder.
    members: Path | None = None
    checkpoint_interval_s: float = 0.5
    # host:port of the Prometheus endpoint (port 0: any); None: no endpoint.
    metrics_listen: str | None = None
    # host:port of the standing SuperLink's Fleet API (port 0: any); None: no training here.
    fleet_listen: str | None = None
    # host:port nodes dial for the Fleet, when it differs from fleet_listen (a name the
    # coordinator's certificate carries: SuperNodes check it against the host they dial)
    fleet_advertise: str | None = None

    def database(self) -> str:
        return self.db_url or sqlite_url(self.data_dir / "coordinator.db")

    def policy_file(self) -> Path | None:
        """``<data dir>/policy.toml`` if the operator put one there; else the seed policy."""
        path = self.data_dir / "policy.toml"
        return path if path.exists() else None

    def tiles_dir(self) -> Path:
        return self.tiles or self.data_dir / "tiles"

    def members_file(self) -> Path:
        return self.members or self.pki_dir / MEMBERS_FILE


@dataclass
class Coordinator:
    config: CoordinatorConfig
    server: RunningServer
    registry: NodeRegistry
    publisher: RegistryPublisher
    ledger: Ledger
    metrics: MetricsServer | None = None
    fleet: Fleet | None = None

    @property
    def endpoint(self) -> str:
        return f"{host_of(self.config.listen)}:{self.server.port}"

    def stop(self) -> None:
        clear_endpoint(self.config.data_dir)
        clear_endpoint(self.config.data_dir, METRICS_ENDPOINT_FILE)
        self.server.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.publisher.stop()
        if self.fleet is not None:
            self.fleet.stop()
        self.ledger.stop()


def start_coordinator(config: CoordinatorConfig) -> Coordinator:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    credentials = PartyCredentials.load(config.pki_dir)
    signer = load_coordinator_signer(config.pki_dir)
    membership = MembershipGate(config.members_file(), credentials.ca_pem)
    engine = make_engine(config.database())
    upgrade(engine, "coordinator")
    registry = NodeRegistry(engine, signer, ca_pem=credentials.ca_pem)
    publisher = RegistryPublisher(registry, credentials)
    ledger = Ledger(
        engine,
        signer,
        tiles_dir=config.tiles_dir(),
        checkpoint_interval_s=config.checkpoint_interval_s,
    )
    ledger.start()
    alignment = AlignmentOrchestrator(engine, ledger, signer, credentials, registry.view)
    blocker = RowBlocker(engine, credentials, registry.view)
    scoring = ScoringService(
        engine, ledger, signer, credentials, registry.view, load_policy(config.policy_file())
    )
    scoring.record_policy()
    prometheus = CollectorRegistry()  # this process's own, so in-process parties never mix
    metrics = CoordinatorMetrics(prometheus, engine, ledger)
    metrics_server = (
        serve_metrics(config.metrics_listen, prometheus) if config.metrics_listen else None
    )
    fleet = _start_fleet(config) if config.fleet_listen else None

    def feature_nodes() -> int:
        return sum(1 for n in registry.view().nodes if n.role == "feature")

    try:
        server = create_server(
            config.listen,
            credentials,
            registrar(
                registry,
                ledger,
                alignment,
                blocker,
                publisher.notify,
                scoring,
                metrics,
                TrainingServicer(fleet, feature_nodes),
            ),
            admit=membership.admit,
            metrics=prometheus,
        )
    except BaseException:
        if fleet is not None:
            fleet.stop()
        raise
    publisher.start()
    coordinator = Coordinator(config, server, registry, publisher, ledger, metrics_server, fleet)
    if fleet is not None:
        fleet.settings_endpoint(coordinator.endpoint)
    if metrics_server is not None:
        write_endpoint(config.data_dir, metrics_server.endpoint, METRICS_ENDPOINT_FILE)
    write_endpoint(config.data_dir, coordinator.endpoint)
    log.info(
        "coordinator serving",
        endpoint=coordinator.endpoint,
        fleet=fleet.endpoint if fleet is not None else None,
        key=signer.verifier.encode(),
    )
    return coordinator


def _start_fleet(config: CoordinatorConfig) -> Fleet:
    """The standing SuperLink (its coordinator endpoint is filled in once the server is up)."""
    from accord.coordinator.fleet import Fleet, FleetSettings  # Flower and torch: only here

    assert config.fleet_listen is not None
    fleet = Fleet(
        config.fleet_listen,
        FleetSettings(config.data_dir, config.pki_dir, endpoint="", db_url=config.db_url),
        advertise=config.fleet_advertise,
    )
    fleet.start()
    return fleet


def _load_models_library() -> None:
    """Import torch and the model store off the start-up path, before a score needs them."""
    import accord.coordinator.model_store
    import accord.scoring.ziln  # noqa: F401


def run_coordinator(config: CoordinatorConfig) -> None:
    coordinator = start_coordinator(config)
    # not a daemon: a process asked to stop while torch is still loading waits for the import
    # to finish (a daemon thread importing C extensions at interpreter exit aborts it)
    threading.Thread(target=_load_models_library, name="warm-up", daemon=False).start()
    serve_until_signalled(coordinator.server, on_stop=coordinator.stop)
