"""Training on Flower's Deployment Engine: a SuperLink and one SuperNode per feature node, each
its own process, over TLS with SuperNode authentication, beside the real Accord network.

(A training through the coordinator's standing SuperLink, from the CLI, with every party in
its own namespace: tests/multihost/.)

(b) P8: a SuperNode killed (SIGKILL) after the first round leaves a finished, usable model
and a run report that names the dropped node;
(c) the SuperLink turns away a SuperNode whose key the coordinator did not register.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import make_pki
from sqlalchemy import Engine, text

from accord.consent.events import Record, decode
from accord.coordinator.deployment import Deployment, run_on_deployment_engine, supernode_auth_key
from accord.coordinator.model_store import load_model
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


def test_p8_training_survives_a_supernode_killed_mid_run(
    aligned: tuple[LocalNetwork, dict[str, str]],
) -> None:
    network, _ = aligned
    killed: dict[str, float] = {}

    def kill_shop_after_first_round(deployment: Deployment, progress: dict[str, object]) -> None:
        if not killed and progress["stage"] == "round" and int(str(progress["round"])) >= 1:
            deployment.supernodes["shop"].kill()
            killed["at_round"] = int(str(progress["round"]))
            killed["time"] = time.monotonic()
            assert not deployment.supernodes["shop"].alive()

    report = train(network, rounds=2, on_progress=kill_shop_after_first_round)

    assert killed, "the run finished before the first round was reported"
    assert report["status"] == "completed"
    # the report names the dropout, and the round it broke was redone with the live nodes
    assert report["dropped_nodes"] == ["shop"]
    run = report["report"]
    assert isinstance(run, dict)
    assert run["rounds"] == 2 and run["redone_rounds"] >= 1
    assert any(event.startswith("shop dropped") for event in run["events"])
    flower = report["flower"]
    assert isinstance(flower, dict)
    assert flower["exit_codes"]["supernode-shop"] == -signal.SIGKILL
    assert clean_exits(flower["exit_codes"]) == {
        "superlink",
        "supernode-pay",
        "supernode-social",
    }

    # a usable model: stored, loadable, scored held-out customers with the nodes left
    model_id = str(report["model_id"])
    metrics = report["metrics"]
    assert isinstance(metrics, dict)
    assert math.isfinite(metrics["auc"]) and 0.0 <= metrics["auc"] <= 1.0
    assert metrics["scored_fraction"] > 0.0  # held-out customers the live nodes could score
    engine = coordinator_engine(network)
    loaded = load_model(engine, model_id)
    engine.dispose()
    assert loaded.nodes == list(FEATURE_NODES)
    assert loaded.ledger_index == report["ledger_index"]
    # the stored model scores a customer from the nodes that are left (pay and social)
    total = np.zeros((1, loaded.config.embedding_dim))
    logit = loaded.top.logits(total, np.array([[True, False, True]]))
    assert 0.0 < float(loaded.calibrator.probabilities(logit)[0]) < 1.0
    stored = stored_model(network, model_id)
    assert stored["report"]["dropped_nodes"] == ["shop"]  # type: ignore[index]
    record, _ = ledger_record(network, int(str(report["ledger_index"])))
    assert record.kind == "model.version" and record.body["droppedNodes"] == ["shop"]


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
