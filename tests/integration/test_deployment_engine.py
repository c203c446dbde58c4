"""Training on Flower's Deployment Engine: a SuperLink and one SuperNode per feature node, each
its own process, over TLS with SuperNode authentication, beside the real Accord network.

(A training through the coordinator's standing SuperLink, from the CLI, with every party in
its own namespace: tests/multihost/.)

P8 (a node's host taken down mid-training: the run finishes, the report and the stored model
name the dropped node) is tested across namespaces in tests/multihost/, on the coordinator's
standing SuperLink; here: the SuperLink turns away a SuperNode whose key the coordinator did not register.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from helpers import make_pki
from sqlalchemy import Engine, text

from accord.consent.events import Record, decode
from accord.coordinator.deployment import Deployment, run_on_deployment_engine, supernode_auth_key
from accord.launcher import LocalNetwork
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url

FEATURE_NODES = ("pay", "shop", "social")
# A node that does not answer within this is dropped. Exchanges took 6-15 s here (Flower polls
# every 3 s; a new ClientApp process per message imports torch), the slowest under load.
EXCHANGE_TIMEOUT_S = 30.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def node_settings(network: LocalNetwork) -> dict[str, dict[str, str]]:
    coordinator = network.parties["coordinator"].endpoint
    return {
        channel: {
            "data-dir": str(network.node_dir(channel)),
            "pki": str(network.pki_dir / channel),
            "coordinator": coordinator,
        }
        for channel in FEATURE_NODES
    }


def train(network: LocalNetwork, rounds: int, **options: object) -> dict[str, object]:
    return run_on_deployment_engine(
        network.workdir,
        network.pki_dir,
        network.workdir / "coordinator",
        network.parties["coordinator"].endpoint,
        node_settings(network),
        seed=3,
        rounds=rounds,
        timeout_s=480.0,
        exchange_timeout_s=EXCHANGE_TIMEOUT_S,
        **options,  # type: ignore[arg-type]
    )


def clean_exits(codes: dict[str, int]) -> set[str]:
    """Processes that stopped cleanly when asked (uvicorn re-raises SIGTERM after shutdown)."""
    return {name for name, code in codes.items() if code in (0, -signal.SIGTERM)}


def coordinator_engine(network: LocalNetwork) -> Engine:
    return make_engine(sqlite_url(network.workdir / "coordinator" / "coordinator.db"))


def ledger_record(network: LocalNetwork, index: int) -> tuple[Record, str]:
    """The ledger entry at ``index`` as the ledger API serves it to an auditor."""
    credentials = PartyCredentials.load(network.pki_dir / "auditor")
    with credentials.channel(network.parties["coordinator"].endpoint, "coordinator") as channel:
        reply = ledger_pb2_grpc.LedgerStub(channel).GetEntries(
            ledger_pb2.GetEntriesRequest(start=index, count=1), timeout=10
        )
    (entry,) = reply.entries
    event = decode(bytes(entry.data))
    assert isinstance(event, Record)
    return event, entry.appended_by


def stored_model(network: LocalNetwork, model_id: str) -> dict[str, object]:
    engine = coordinator_engine(network)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT alignment_run, training_run, ledger_index, report FROM model_version "
                "WHERE model_id = :m"
            ),
            {"m": model_id},
        ).one()
    engine.dispose()
    return {
        "alignment_run": row[0],
        "training_run": row[1],
        "ledger_index": row[2],
        "report": json.loads(row[3]),
    }


def test_superlink_refuses_a_supernode_whose_key_is_not_registered(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", ["coordinator", "pay"])
    data_dir = tmp_path / "pay"
    data_dir.mkdir()
    with Deployment(tmp_path / "run", pki / "coordinator") as deployment:
        deployment.start_superlink()
        key = supernode_auth_key(data_dir).with_suffix("")  # made, never registered
        settings = {"data-dir": str(data_dir), "pki": str(pki / "pay"), "coordinator": "x:1"}
        node = deployment.start_supernode("pay", settings, registered=key)
        node.process.wait(timeout=60)
        assert node.process.returncode != 0
        assert "Failed to activate SuperNode" in node.log_path.read_text()
