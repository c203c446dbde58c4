"""`accord bench soak`, short: the coordinator and a node are SIGKILLed under scoring load and
consent churn; no acknowledged append is lost and every checkpoint extends the earlier ones."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NODES = {"pay", "shop", "social", "label"}


@pytest.mark.slow
def test_a_short_soak_with_kills_loses_no_acknowledged_append() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "bench",
            "soak",
            "--seconds",
            "18",
            "--fault-every",
            "7",
            "--customers",
            "200",
            "--rate",
            "3",
            "--churn-every",
            "0.6",
            "--seed",
            "1",
            "--no-scoring",  # the 10-minute run in the notes scores; this one checks the ledger
        ],
        capture_output=True,
        text=True,
        timeout=400,  # generous: the machine is shared; a passing run takes well under a minute
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    killed = [f["target"] for f in result["faults"]]
    assert "coordinator" in killed and NODES & set(killed), killed
    assert all(f["kind"] == "sigkill" for f in result["faults"])
    # each party served again after its kill, and the load saw it
    assert all(f["recover_s"] is not None for f in result["faults"]), result["faults"]
    # receipts acknowledged appends across the kills; every one is in the final log
    assert result["acked_appends"] > 10
    assert result["acked_appends_lost"] == 0, result["lost_indexes"]
    assert result["pending_undelivered"] == 0
    assert result["checkpoints_observed"] > 3
    assert result["checkpoint_links_verified"] > 1
    assert result["checkpoints_inconsistent"] == 0, result["inconsistencies"]
    assert set(result["rss_mb"]) == {"coordinator", *NODES, "client"}
    # the restarted processes stop cleanly at the end
    assert result["exit_codes"] == dict.fromkeys(["coordinator", *NODES], 0)
