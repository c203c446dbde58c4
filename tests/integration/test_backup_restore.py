"""Backup and restore with real processes, and a coordinator rolled back to an older backup.

The coordinator is backed up while it serves; the ledger grows and two witnesses cosign the
newer checkpoint; then the coordinator is stopped, restored from the older backup and started
again on the same address. What it now serves does not extend what the nodes verified: each
node's ledger watch keeps a rollback alarm (``accord node status`` fails with it), the
witnesses still hold the newer checkpoint and refuse to cosign, and an auditor holding the
newer checkpoint is told the log shrank. Nobody silently accepts the older ledger.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from helpers import make_pki

from accord.crypto.note import Note
from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.launcher import LocalNetwork
from accord.node import store
from accord.node.ledger_watch import alarms, views
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

NODES = {"pay": "feature", "shop": "feature"}
WAIT_S = 60.0  # generous: only a failing run waits this long


def accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args], capture_output=True, text=True, timeout=120
    )


def coordinator_size(network: LocalNetwork) -> int:
    conn = sqlite3.connect(network.workdir / "coordinator" / "coordinator.db", timeout=30)
    try:
        return int(conn.execute("SELECT MAX(size) FROM ledger_checkpoint").fetchone()[0] or 0)
    finally:
        conn.close()


def node_engine(network: LocalNetwork, channel: str):  # type: ignore[no-untyped-def]
    return make_engine(sqlite_url(network.node_dir(channel) / "node.db"))


def wait_for(what: str, check) -> None:  # type: ignore[no-untyped-def]
    give_up = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        time.sleep(0.2)


def viewed(network: LocalNetwork, channel: str) -> int:
    found = views(node_engine(network, channel))
    return found[0].size if found else 0


def witnessed(network: LocalNetwork, channel: str) -> int:
    conn = sqlite3.connect(network.node_dir(channel) / "node.db", timeout=30)
    try:
        row = conn.execute("SELECT size FROM witness_checkpoint").fetchone()
        return 0 if row is None else int(row[0])
    finally:
        conn.close()


def import_consents(network: LocalNetwork, channel: str) -> None:
    done = accord(
        "consent",
        "import",
        "--file",
        str(network.workdir / "data" / f"{channel}.consents.csv"),
        "--node",
        network.parties[channel].endpoint,
        "--pki",
        str(network.pki_dir / channel),
    )
    assert done.returncode == 0, done.stderr


def audit(network: LocalNetwork, *args: str) -> subprocess.CompletedProcess[str]:
    coordinator = network.parties["coordinator"].endpoint
    return accord(
        "audit", *args, "--coordinator", coordinator, "--pki", str(network.pki_dir / "auditor")
    )


def test_nodes_and_witnesses_catch_a_coordinator_restored_from_an_older_backup(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki")
    split_by_channel(synthesize(60), "realistic").write(tmp_path / "data", consents_seed=3)
    network = LocalNetwork(workdir=tmp_path, pki_dir=pki, metrics_listen=None)
    for channel in NODES:
        engine = node_engine(network, channel)
        upgrade(engine, "node")
        table = read_channel_table(tmp_path / "data" / f"{channel}.csv")
        store.import_table(engine, table, channel)
        engine.dispose()
    coordinator_dir = tmp_path / "coordinator"
    try:
        coordinator = network.start_coordinator()
        for channel, role in NODES.items():
            network.start_node(channel, role)
        for channel in NODES:
            network.parties[channel].wait_ready()

        # the ledger grows; a backup is taken while the coordinator serves
        import_consents(network, "pay")
        wait_for("a first checkpoint", lambda: coordinator_size(network) > 0)
        old = tmp_path / "coordinator-old.tgz"
        done = accord(
            "backup", "--role", "coordinator", "--data-dir", str(coordinator_dir), "--out", str(old)
        )
        assert done.returncode == 0, done.stderr
        assert "ledger of" in done.stdout and "private keys" not in done.stdout

        # it grows on; the witnesses cosign the newer checkpoint, an auditor keeps it
        import_consents(network, "shop")
        newer = tmp_path / "newer.note"
        done = audit(network, "checkpoint", "--witnesses", "2", "--save", str(newer))
        assert done.returncode == 0, done.stdout + done.stderr
        held = Note.parse(newer.read_text()).text.splitlines()
        size = int(held[1])
        for channel in NODES:
            wait_for(
                f"{channel} to verify checkpoint {size}",
                lambda c=channel: viewed(network, c) >= size,
            )
            assert witnessed(network, channel) == size

        # a restore under the running coordinator is refused and changes nothing
        done = accord(
            "restore", "--from", str(old), "--data-dir", str(coordinator_dir), "--replace"
        )
        assert done.returncode == 1
        assert "stop it before restoring" in done.stderr and len(done.stderr.splitlines()) == 1
        assert not list(coordinator_dir.glob("replaced-*"))

        # stop, restore the older backup, start again on the same address
        endpoint = coordinator.endpoint
        assert coordinator.terminate() == 0
        done = accord(
            "restore", "--from", str(old), "--data-dir", str(coordinator_dir), "--replace"
        )
        assert done.returncode == 0, done.stderr
        assert "report a rollback" in done.stdout
        restored = coordinator_size(network)
        assert 0 < restored < size
        network.start_coordinator(listen=endpoint)
        tiles = Note.parse((coordinator_dir / "tiles" / "checkpoint").read_text()).text
        assert int(tiles.splitlines()[1]) == restored  # the public tiles went back with it

        # every node detects it, keeps its newer checkpoint and says so
        for channel in NODES:
            wait_for(
                f"{channel}'s rollback alarm", lambda c=channel: alarms(node_engine(network, c))
            )
            (alarm,) = alarms(node_engine(network, channel))
            assert (alarm.kind, alarm.held_size, alarm.served_size) == ("rollback", size, restored)
            assert viewed(network, channel) == size
        status = accord("node", "status", "--data-dir", str(network.node_dir("pay")))
        assert status.returncode == 1
        assert "LEDGER ROLLBACK" in status.stdout
        assert len(status.stderr.splitlines()) == 1
        assert f"rollback: held {size}, served {restored}" in status.stderr

        # the witnesses refuse to cosign the restored log and still hold the newer checkpoint
        done = audit(network, "checkpoint", "--witnesses", "1")
        assert done.returncode == 1
        assert "rolled-back log" in done.stderr and len(done.stderr.splitlines()) == 1
        assert all(witnessed(network, channel) == size for channel in NODES)

        # an auditor holding the newer checkpoint is told the log shrank
        done = audit(network, "verify", "--old", str(newer))
        assert done.returncode == 1
        assert "shrank" in done.stderr
    finally:
        codes = network.stop()
    assert codes == dict.fromkeys(codes, 0), f"unclean shutdown: {codes}"
