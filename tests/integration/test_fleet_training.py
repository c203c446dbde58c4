"""Training from each node's own domain: the coordinator's standing SuperLink, a SuperNode that
each feature node's `node serve` starts with its own key, and `accord train --coordinator` run
from the operator's folder alone.

(a) a trust model trains through the standing Fleet and lands on the ledger;
(b) a run submitted to the SuperLink by someone else (no ticket, or an app that carries code)
does nothing: the ServerApp refuses it, and the nodes never run foreign code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import aligned_network
from test_deployment_engine import ledger_record, stored_model

from accord.launcher import LocalNetwork

FEATURE_NODES = ("pay", "shop", "social")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    with aligned_network(tmp_path_factory.mktemp("fleet"), fleet_listen="127.0.0.1:0") as built:
        yield built[0]


def accord(*args: str, timeout: float = 540) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args], capture_output=True, text=True, timeout=timeout
    )


def test_operator_trains_through_the_coordinator_on_the_nodes_own_supernodes(
    fleet: LocalNetwork,
) -> None:
    coordinator = fleet.parties["coordinator"].endpoint
    result = accord(
        "train",
        "--coordinator",
        coordinator,
        "--pki",
        str(fleet.pki_dir / "coordinator"),
        "--rounds",
        "2",
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out AUC" in result.stdout
    reports = fleet.workdir / "coordinator" / "training"
    (path,) = [p for p in reports.glob("train-*.json") if "progress" not in p.name]
    report = json.loads(path.read_text())
    assert report["status"] == "completed"
    assert sorted(report["flower_nodes"]) == list(FEATURE_NODES)
    assert report["dropped_nodes"] == []
    # each node's SuperNode ran in its own data folder, with its own key
    for channel in FEATURE_NODES:
        folder = fleet.node_dir(channel) / "flower"
        assert "Receiving: query.embed" in (folder / "supernode.log").read_text()
        assert (fleet.node_dir(channel) / "flower-supernode.key").exists()
    # the ticket was used up
    assert list((fleet.workdir / "coordinator" / "flower" / "tickets").iterdir()) == []
    assert report["exchanges"] == 8  # hello, start, 2 × (embed, backprop), score, finish
    # stored, and on the ledger in the coordinator's name
    model_id = str(report["model_id"])
    assert f"Trust model {model_id}" in result.stdout
    stored = stored_model(fleet, model_id)
    assert stored["ledger_index"] == report["ledger_index"]
    assert stored["training_run"] == report["run_id"]
    record, appended_by = ledger_record(fleet, int(str(report["ledger_index"])))
    assert appended_by == "coordinator"
    assert record.kind == "model.version"
    assert record.body["model"] == model_id
    assert record.body["alignmentRun"] == stored["alignment_run"] == report["alignment_run"]
    metrics = report["metrics"]
    assert isinstance(metrics, dict) and 0.0 <= metrics["auc"] <= 1.0


def test_a_feature_role_cannot_start_training(fleet: LocalNetwork) -> None:
    result = accord(
        "train",
        "--coordinator",
        fleet.parties["coordinator"].endpoint,
        "--pki",
        str(fleet.pki_dir / "pay"),
        timeout=60,
    )
    assert result.returncode != 0
    assert "PERMISSION_DENIED" in result.stderr and "Traceback" not in result.stderr
