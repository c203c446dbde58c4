"""P9: an acknowledged append survives SIGKILL of the coordinator; the tree stays verifiable."""

from __future__ import annotations

import random
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from helpers import fresh_postgres_database, grant_event, make_pki

from accord.audit import LedgerClient, check_note, recompute_root
from accord.crypto.merkle import ConsistencyProof
from accord.crypto.note import Checkpoint
from accord.launcher import LocalNetwork, tail
from accord.pki_layout import load_coordinator_verifier
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.tls import PartyCredentials

KILLS = 5
WRITERS = 4
SEED = 20261125


class Appender(threading.Thread):
    """Appends continuously through whichever coordinator process is up; records every ack."""

    def __init__(
        self, name: str, network: LocalNetwork, creds: PartyCredentials, stop: threading.Event
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.network, self.creds, self.stop = network, creds, stop
        self.acked: dict[int, bytes] = {}
        self.attempts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a writer that dies silently would stall the test
            self.error = exc
            raise

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            endpoint = self.network.parties["coordinator"].endpoint
            if not endpoint:  # the restarted process has not published its port yet
                time.sleep(0.05)
                continue
            with self.creds.channel(endpoint, "coordinator") as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                while not self.stop.is_set():
                    batch = [grant_event(n + i, tag=self.name) for i in range(3)]
                    self.attempts += 1
                    try:
                        reply = stub.Append(ledger_pb2.AppendRequest(entries=batch), timeout=2)
                    except grpc.RpcError as err:
                        if err.code() == grpc.StatusCode.ALREADY_EXISTS:  # type: ignore[attr-defined]
                            # The batch was durable but its acknowledgement died with the
                            # process: not acked, so not counted; move on to fresh entries.
                            n += len(batch)
                            continue
                        time.sleep(0.05)
                        break  # the process died: reconnect to the new endpoint
                    for appended, data in zip(reply.appended, batch, strict=True):
                        self.acked[appended.index] = data
                    n += len(batch)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_acknowledged_appends_survive_sigkill(tmp_path: Path, backend: str) -> None:
    rng = random.Random(SEED)
    with ExitStack() as stack:
        db_urls = (
            {"coordinator": stack.enter_context(fresh_postgres_database())}
            if backend == "postgres"
            else {}
        )
        network = LocalNetwork(
            workdir=tmp_path, pki_dir=make_pki(tmp_path / "pki"), db_urls=db_urls
        )
        creds = PartyCredentials.load(network.pki_dir / "pay")
        verifier = load_coordinator_verifier(network.pki_dir / "auditor")
        network.start_coordinator()
        stop = threading.Event()
        writers = [Appender(f"w{i}", network, creds, stop) for i in range(WRITERS)]
        for w in writers:
            w.start()
        observed: list[Checkpoint] = []
        try:
            for _ in range(KILLS):
                deadline = time.monotonic() + rng.uniform(0.3, 1.2)
                while time.monotonic() < deadline:
                    observed.append(_checkpoint(network, creds, verifier))
                    time.sleep(0.1)
                network.parties["coordinator"].kill()  # SIGKILL, mid-flight
                network.start_coordinator()
                _wait_for_progress(writers, network)
            time.sleep(0.5)
        finally:
            stop.set()
            for w in writers:
                w.join(timeout=10)
        acked = {i: d for w in writers for i, d in w.acked.items()}
        assert len(acked) > 100, "the writers should have made progress between kills"
        # the whole tree is read as the auditor: feature nodes may not list entries
        auditor = PartyCredentials.load(network.pki_dir / "auditor")
        with auditor.channel(network.parties["coordinator"].endpoint, "coordinator") as channel:
            client = LedgerClient(channel, verifier, "coordinator")
            stub = ledger_pb2_grpc.LedgerStub(channel)
            # wait for a checkpoint covering everything acknowledged, then check the whole tree
            give_up = time.monotonic() + 20
            while (latest := client.checkpoint().checkpoint).size < max(acked) + 1:
                assert time.monotonic() < give_up, (latest.size, max(acked))
                time.sleep(0.2)
            served = {e.index: bytes(e.data) for e in client.entries(latest.size)}
            lost = [i for i, data in acked.items() if served.get(i) != data]
            assert lost == [], f"acknowledged appends lost or changed: {lost[:10]}"
            assert recompute_root(client, latest) == latest.size
            for old in {c.size: c for c in observed if c.size > 0}.values():
                reply = stub.GetConsistencyProof(
                    ledger_pb2.GetConsistencyProofRequest(size1=old.size, size2=latest.size),
                    timeout=10,
                )
                ConsistencyProof(
                    old.size, latest.size, old.root_hash, latest.root_hash, tuple(reply.hashes)
                ).verify()
        codes = network.stop()
        assert codes["coordinator"] == 0
        assert len({c.size for c in observed}) > KILLS // 2


def _wait_for_progress(
    writers: list[Appender], network: LocalNetwork, timeout_s: float = 30.0
) -> None:
    """Until the restarted coordinator has acknowledged a new append: each kill then lands in
    a log that moved since the last one, not in a process still recovering."""
    before = sum(len(w.acked) for w in writers)
    give_up = time.monotonic() + timeout_s
    while sum(len(w.acked) for w in writers) <= before:
        errors = {w.name: repr(w.error) for w in writers if w.error is not None}
        assert not errors, f"a writer died: {errors}"
        assert time.monotonic() < give_up, (
            "no append was acknowledged after the restart: "
            f"{[(w.attempts, len(w.acked)) for w in writers]}; "
            + tail(network.parties["coordinator"].log_path, 30)
        )
        time.sleep(0.05)


def _checkpoint(network: LocalNetwork, creds: PartyCredentials, verifier) -> Checkpoint:  # type: ignore[no-untyped-def]
    with creds.channel(network.parties["coordinator"].endpoint, "coordinator") as channel:
        try:
            note = (
                ledger_pb2_grpc.LedgerStub(channel)
                .GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=1)
                .note
            )
        except grpc.RpcError:
            return Checkpoint("accord.test/coordinator", 0, bytes(32))
    return check_note(note, verifier, what="checkpoint")
