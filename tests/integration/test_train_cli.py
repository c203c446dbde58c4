"""`accord train` on a network of real node processes: Flower simulation over their own stores."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from accord.consent.events import Record, decode


@pytest.mark.slow
def test_accord_train_publishes_a_model_on_the_ledger(trained) -> None:  # type: ignore[no-untyped-def]
    network, out, result = trained
    assert "held-out AUC" in result.stdout
    assert (out / "calibration.png").stat().st_size > 10_000
    summary = json.loads((out / "model.json").read_text())
    engine = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT model_id, ledger_index, alignment_run FROM model_version WHERE model_id = :m"
            ),
            {"m": summary["model"]},
        ).one()
        entry = conn.execute(
            text("SELECT data FROM ledger_entry WHERE idx = :i"), {"i": row[1]}
        ).scalar()
    event = decode(bytes(entry))
    assert isinstance(event, Record) and event.kind == "model.version"
    assert event.body["model"] == summary["model"] and event.body["alignmentRun"] == row[2]
    # every feature node logged its training use through its gate
    for channel in ("pay", "shop", "social"):
        node = create_engine(f"sqlite:///{network.node_dir(channel) / 'node.db'}")
        with node.connect() as conn:
            sessions = {r[0] for r in conn.execute(text("SELECT DISTINCT session FROM data_use"))}
        assert summary["report"]["run_id"] in sessions, channel


def test_an_unknown_runtime_is_one_readable_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "accord", "demo", "train", "--runtime", "cloud"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "accord: error: --runtime must be simulation or deployment"
