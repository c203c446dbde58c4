"""Replayed and foreign alignment tickets at the label node's ``Psi`` (issue 16, item 8).

``Psi`` answers any registered node; it used to wait up to 120 s for the run to be prepared
before checking that the caller is one of the run's channels, or that the run was not already
over. A node holding one old ticket (every channel receives the run's ticket) could open ~32
streams and hold every RPC thread of the label node for two minutes, stalling genuine runs.
Now everything the signed ticket says is checked at once, runs that are over are refused at
once, and a caller may hold only ``MAX_WAITING_PER_CALLER`` streams waiting for a preparation.

Real processes: a coordinator, the label node and two channels over mTLS; the attacker is the
pay node's certificate, its tickets signed with the coordinator's own key (a replay of a ticket
pay was given is byte for byte such a ticket).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from helpers import make_pki
from sqlalchemy import create_engine, text

from accord.coordinator.alignment import PURPOSE, TICKET_LIFETIME_S
from accord.crypto.keys import NoteSigner
from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.launcher import LocalNetwork
from accord.node import store
from accord.node.alignment import MAX_WAITING_PER_CALLER, TICKET_DOMAIN
from accord.pki_layout import load_coordinator_signer
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

ROLES = {"pay": "feature", "shop": "feature", "label": "label"}
AT_ONCE_S = 5.0  # a refusal takes a round trip, not a wait for a preparation
FLOOD = 40  # more streams than the label node has RPC threads (32)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """A network that ran one alignment (its run is over at the label node)."""
    workdir = tmp_path_factory.mktemp("psi-tickets")
    pki = make_pki(workdir / "pki")
    split_by_channel(synthesize(200), "full").write(workdir / "data", consents_seed=3)
    network = LocalNetwork(workdir=workdir, pki_dir=pki)
    for channel in ROLES:
        engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
        upgrade(engine, "node")
        store.import_table(engine, read_channel_table(workdir / "data" / f"{channel}.csv"), channel)
        engine.dispose()
    network.start_coordinator()
    try:
        for channel, role in ROLES.items():
            network.start_node(channel, role)
        for channel in ROLES:
            network.parties[channel].wait_ready()
        for channel in ROLES:
            done = cli(
                "consent", "import", "--file", str(workdir / "data" / f"{channel}.consents.csv"),
                "--node", network.parties[channel].endpoint, "--pki", str(pki / channel),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        assert align(network).returncode == 0
        yield network
    finally:
        network.kill_all()  # streams left waiting at the label node need not be drained


def align(network: LocalNetwork, *channels: str) -> subprocess.CompletedProcess[str]:
    done = cli(
        "align", "--coordinator", network.parties["coordinator"].endpoint,
        "--pki", str(network.pki_dir / "label"), "--channels", ",".join(channels),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def ticket(
    network: LocalNetwork,
    run_id: str,
    channels: list[str],
    signer: NoteSigner | None = None,
) -> alignment_pb2.SignedTicket:
    signer = signer or load_coordinator_signer(network.pki_dir / "coordinator")
    body = alignment_pb2.AlignmentTicket(
        run_id=run_id,
        label_node="label",
        channels=channels,
        identifier=alignment_pb2.IDENTIFIER_KIND_PHONE,
        purpose=PURPOSE,
        expires_at=int(time.time()) + TICKET_LIFETIME_S,
    ).SerializeToString(deterministic=True)
    return alignment_pb2.SignedTicket(ticket=body, signature=signer.sign(TICKET_DOMAIN + body))


def open_psi(
    network: LocalNetwork, signed: alignment_pb2.SignedTicket, timeout_s: float
) -> Any:  # the streaming call: iterate it, or cancel it
    creds = PartyCredentials.load(network.pki_dir / "pay")
    channel = creds.channel(network.parties["label"].endpoint, "label")
    hello = alignment_pb2.PsiMessage(
        hello=alignment_pb2.PsiHello(ticket=signed, channel="pay", count=1)
    )
    return alignment_pb2_grpc.NodeAlignmentStub(channel).Psi(iter([hello]), timeout=timeout_s)


def refusal(
    network: LocalNetwork, signed: alignment_pb2.SignedTicket
) -> tuple[grpc.StatusCode, str, float]:
    started = time.monotonic()
    call = open_psi(network, signed, timeout_s=30)
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    return err.value.code(), err.value.details() or "", time.monotonic() - started


def finished_run(network: LocalNetwork) -> tuple[str, list[str]]:
    engine = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with engine.connect() as conn:
        run_id = conn.execute(text("SELECT run_id FROM alignment_run LIMIT 1")).scalar()
    engine.dispose()
    return str(run_id), ["pay", "shop"]


def test_forged_foreign_and_replayed_tickets_are_refused_at_once(net: LocalNetwork) -> None:
    run_id, channels = finished_run(net)
    # forged: not the coordinator's signature
    forger = NoteSigner.generate("accord.test/coordinator")
    code, details, took = refusal(net, ticket(net, uuid.uuid4().hex, ["pay"], forger))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not signed" in details
    assert took < AT_ONCE_S
    # a genuine ticket for a run pay is not a channel of
    code, details, took = refusal(net, ticket(net, uuid.uuid4().hex, ["shop"]))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not a channel" in details
    assert took < AT_ONCE_S
    # pay's own ticket of the run that is over, replayed
    code, details, took = refusal(net, ticket(net, run_id, channels))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "over" in details, details
    assert took < AT_ONCE_S


def test_a_flood_of_replayed_tickets_does_not_hold_up_a_genuine_run(net: LocalNetwork) -> None:
    # tickets of runs never prepared here (a run aborted before its preparation, or one the
    # label node forgot in a restart): the one case that waits
    calls = [
        open_psi(net, ticket(net, uuid.uuid4().hex, ["pay"]), timeout_s=150) for _ in range(FLOOD)
    ]
    outcomes: list[tuple[grpc.StatusCode | None, float]] = []
    lock = threading.Lock()
    started = time.monotonic()

    def drain(call: Any) -> None:
        try:
            next(call)
            code = None
        except grpc.RpcError as err:
            code = err.code()
        with lock:
            outcomes.append((code, time.monotonic() - started))

    threads = [threading.Thread(target=drain, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 3 * AT_ONCE_S
    while time.monotonic() < deadline:
        with lock:
            if len(outcomes) >= FLOOD - MAX_WAITING_PER_CALLER:
                break
        time.sleep(0.1)
    with lock:
        refused = [code for code, _ in outcomes]
    # all but the few a caller may hold are turned away at once
    assert len(refused) >= FLOOD - MAX_WAITING_PER_CALLER, f"only {len(refused)} answered"
    assert set(refused) == {grpc.StatusCode.UNAVAILABLE}
    # and a genuine run (of another channel: pay stalls only its own streams) goes through
    # while those few still wait
    began = time.monotonic()
    align(net, "shop")
    assert time.monotonic() - began < 90.0
    for call in calls:
        call.cancel()
