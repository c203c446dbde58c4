"""Lost revocations (issue 16, attack 6): a revocation made while the coordinator is away.

Real processes: a coordinator and four nodes over mTLS. The coordinator is killed, a customer
revokes at the pay node, and the revocation must still reach the ledger (provably: a verified
inclusion proof of the exact entry) and stop every other node once the coordinator is back,
also when the node itself is killed before it could deliver. Before the node's outbox, the
revocation was committed locally and never reached the ledger; other nodes kept computing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest
from helpers import make_pki
from sqlalchemy import create_engine, text

from accord.consent.events import ConsentRevoked, decode
from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.launcher import LocalNetwork
from accord.ledger_writer import LedgerWriter
from accord.node import outbox, store
from accord.node.outbox import REVOKED, ProvenLookup
from accord.pki_layout import COORDINATOR, load_coordinator_verifier
from accord.proto.v1 import node_pb2, node_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}
DELIVERY_S = 60.0


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},  # Rich tables print whole words
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, str]]:
    """An aligned network whose coordinator listens on a fixed port (so it can come back)."""
    workdir = tmp_path_factory.mktemp("lost-revocations")
    pki = make_pki(workdir / "pki")
    split_by_channel(synthesize(200), "full").write(workdir / "data", consents_seed=3)
    network = LocalNetwork(workdir=workdir, pki_dir=pki)
    for channel in ROLES:
        engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
        upgrade(engine, "node")
        store.import_table(engine, read_channel_table(workdir / "data" / f"{channel}.csv"), channel)
        engine.dispose()
    listen = f"127.0.0.1:{free_port()}"
    network.start_coordinator(listen=listen)
    try:
        for channel, role in ROLES.items():
            network.start_node(channel, role)
        for channel in ROLES:
            network.parties[channel].wait_ready()
        for channel in ROLES:
            done = cli(
                "consent",
                "import",
                "--file",
                str(workdir / "data" / f"{channel}.consents.csv"),
                "--node",
                network.parties[channel].endpoint,
                "--pki",
                str(pki / channel),
            )
            assert done.returncode == 0, done.stderr
        aligned = cli(
            "align", "--coordinator", network.parties["coordinator"].endpoint, "--pki",
            str(pki / "label"),
        )  # fmt: skip
        assert aligned.returncode == 0, aligned.stderr
        yield network, listen
    finally:
        network.stop()


def unblocked_row(network: LocalNetwork) -> dict[str, tuple[bytes, str]]:
    """A customer every node holds and nobody revoked: each node's (row key, local ref)."""
    coordinator = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with coordinator.connect() as conn:
        run_id, row_key = conn.execute(
            text(
                "SELECT run_id, row_key FROM aligned_row GROUP BY run_id, row_key "
                "HAVING COUNT(*) = 4 AND row_key NOT IN (SELECT row_key FROM blocked_row) LIMIT 1"
            )
        ).one()
        keys = conn.execute(
            text("SELECT node, node_row_key FROM aligned_row WHERE run_id = :r AND row_key = :k"),
            {"r": run_id, "k": row_key},
        ).all()
    coordinator.dispose()
    out = {}
    for node, key in keys:
        engine = create_engine(f"sqlite:///{network.node_dir(node) / 'node.db'}")
        with engine.connect() as conn:
            ref = conn.execute(
                text("SELECT local_ref FROM alignment_row WHERE run_id = :r AND row_key = :k"),
                {"r": run_id, "k": key},
            ).scalar()
        engine.dispose()
        out[str(node)] = (bytes(key), str(ref))
    return out | {"_run": (b"", str(run_id))}


def computes(network: LocalNetwork, node: str, run_id: str, key: bytes, n: int) -> bool:
    """Whether ``node`` still computes on this customer (asked as the coordinator would)."""
    creds = PartyCredentials.load(network.pki_dir / "coordinator")
    with creds.channel(network.parties[node].endpoint, node) as ch:
        try:
            node_pb2_grpc.NodeServiceStub(ch).Compute(
                node_pb2.ComputeRequest(
                    run_id=run_id, row_key=key, purpose="model-training", session=f"probe-{n}"
                ),
                timeout=10,
            )
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err  # type: ignore[attr-defined]
            return False
    return True


def revoke_at_pay(network: LocalNetwork, ref: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "consent", "revoke", "--ref", ref, "--node", network.parties["pay"].endpoint,
        "--pki", str(network.pki_dir / "pay"),
    )  # fmt: skip


def pay_engine(network: LocalNetwork):  # type: ignore[no-untyped-def]
    return make_engine(sqlite_url(network.node_dir("pay") / "node.db"))


def wait_delivered(network: LocalNetwork) -> None:
    engine = pay_engine(network)
    give_up = time.monotonic() + DELIVERY_S
    while outbox.pending(engine) and time.monotonic() < give_up:
        time.sleep(0.2)
    left = outbox.pending(engine)
    engine.dispose()
    assert not left, f"still pending after {DELIVERY_S} s: {left}"


def revocations_on_ledger(network: LocalNetwork, consent: bytes) -> list[tuple[int, bytes]]:
    engine = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT idx, data FROM ledger_entry ORDER BY idx")).all()
    engine.dispose()
    found = []
    for idx, data in rows:
        event = decode(bytes(data))
        if isinstance(event, ConsentRevoked) and event.consent == consent:
            found.append((int(idx), bytes(data)))
    return found


def proven_index(network: LocalNetwork, consent: bytes, payload: bytes) -> int | None:
    """The index the ledger proves (signed checkpoint + inclusion proof) this exact entry at."""
    creds = PartyCredentials.load(network.pki_dir / "pay")
    writer = LedgerWriter(creds, network.parties["coordinator"].endpoint, COORDINATOR)
    try:
        lookup = ProvenLookup(writer, load_coordinator_verifier(network.pki_dir / "pay"))
        give_up = time.monotonic() + 10
        while (index := lookup.find(REVOKED, consent, payload)) is None:
            if time.monotonic() > give_up:
                return None
            time.sleep(0.3)  # the next checkpoint covers it
        return index
    finally:
        writer.close()


def revoked_record(network: LocalNetwork, ref: str) -> tuple[bytes, int | None]:
    engine = pay_engine(network)
    with engine.connect() as conn:
        consent, index = conn.execute(
            text(
                "SELECT consent_commitment, revoke_index FROM consent_record "
                "WHERE local_ref = :r AND status = 'revoked'"
            ),
            {"r": ref},
        ).one()
    engine.dispose()
    return bytes(consent), index


def assert_on_ledger_and_stopped(network: LocalNetwork, row: dict[str, tuple[bytes, str]]) -> None:
    wait_delivered(network)
    consent, index = revoked_record(network, row["pay"][1])
    entries = revocations_on_ledger(network, consent)
    assert len(entries) == 1, f"one revocation on the ledger, found {entries}"
    (entry_index, payload) = entries[0]
    assert index == entry_index, "the node recorded the index the ledger gave"
    assert proven_index(network, consent, payload) == entry_index, "inclusion proof verifies"
    run_id = row["_run"][1]
    for n, node in enumerate(("shop", "social", "label")):
        assert not computes(network, node, run_id, row[node][0], n), f"{node} still computes"


def test_revocation_made_during_coordinator_outage_reaches_ledger(
    net: tuple[LocalNetwork, str],
) -> None:
    network, listen = net
    row = unblocked_row(network)
    run_id = row["_run"][1]
    assert computes(network, "shop", run_id, row["shop"][0], 100), "shop computes before"
    network.parties["coordinator"].kill()  # SIGKILL: the coordinator is gone mid-life

    revoked = revoke_at_pay(network, row["pay"][1])
    assert revoked.returncode == 0, revoked.stderr
    assert "pending" in revoked.stdout, revoked.stdout
    # the local stop holds at once, coordinator or not
    assert not computes(network, "pay", run_id, row["pay"][0], 101)

    status = cli("node", "status", "--data-dir", str(network.node_dir("pay")))
    assert status.returncode == 0, status.stderr
    assert "consent.revoked" in status.stdout and "network.stop" in status.stdout, status.stdout
    assert "2 pending" in status.stdout, status.stdout

    network.start_coordinator(listen=listen)  # same data dir, same address
    assert_on_ledger_and_stopped(network, row)
    after = cli("node", "status", "--data-dir", str(network.node_dir("pay")))
    assert after.returncode == 0 and "0 pending" in after.stdout, after.stdout


def test_revocation_survives_node_crash_before_delivery(net: tuple[LocalNetwork, str]) -> None:
    network, listen = net
    row = unblocked_row(network)
    network.parties["coordinator"].kill()
    revoked = revoke_at_pay(network, row["pay"][1])
    assert revoked.returncode == 0 and "pending" in revoked.stdout, revoked.stdout
    network.parties["pay"].kill()  # SIGKILL after the local commit, before any delivery

    network.start_coordinator(listen=listen)
    network.start_node("pay", "feature").wait_ready()
    assert_on_ledger_and_stopped(network, row)


def test_crash_between_append_and_mark_appends_nothing_twice(
    net: tuple[LocalNetwork, str],
) -> None:
    """The node appended, then died before marking the entry sent: it must not append again."""
    network, _ = net
    row = unblocked_row(network)
    revoked = revoke_at_pay(network, row["pay"][1])
    assert revoked.returncode == 0 and "pending" not in revoked.stdout, revoked.stdout
    wait_delivered(network)
    consent, index = revoked_record(network, row["pay"][1])
    network.parties["pay"].kill()
    engine = pay_engine(network)
    with engine.begin() as conn:  # the state a SIGKILL between the append and the mark leaves
        conn.execute(
            text(
                "UPDATE ledger_outbox SET state = 'pending', sent_at = NULL, ledger_index = NULL "
                "WHERE consent = :c"
            ),
            {"c": consent},
        )
        conn.execute(
            text("UPDATE consent_record SET revoke_index = NULL WHERE consent_commitment = :c"),
            {"c": consent},
        )
    engine.dispose()
    network.start_node("pay", "feature").wait_ready()
    assert_on_ledger_and_stopped(network, row)
    assert revoked_record(network, row["pay"][1])[1] == index
