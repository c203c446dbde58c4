"""`accord bench ledger`: durable appends from concurrent gRPC clients against two floors.

All in one invocation against the same database: the ledger through a real coordinator process
(group commit, Merkle nodes, checkpoints); ``floor_inserts_per_s``, plain rows inserted by the
same number of concurrent writers with one commit per row (the durability a ledger
acknowledgement promises); and ``rpc_floor_per_s``, no-op RPCs (health checks) from the same
clients to the same process, the ceiling any gRPC service reaches here. ``proof_ms`` is proof
generation from a cold store, ``proof_rpc_ms`` the same proof fetched over gRPC.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.progress import Progress
from sqlalchemy import text

from accord.consent.events import ConsentGranted, encode
from accord.coordinator.ledger.store import SqlLedgerStore
from accord.crypto.merkle import inclusion_proof, verify_inclusion
from accord.crypto.note import verify_checkpoint
from accord.launcher import LocalNetwork
from accord.pki_layout import init_pki, load_coordinator_verifier
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url


@dataclass(frozen=True)
class LedgerBench:
    entries: int
    clients: int
    backend: str
    appends_per_s: float
    floor_inserts_per_s: float
    rpc_floor_per_s: float
    proof_ms: float
    proof_rpc_ms: float
    verify_ms: float

    def as_json(self) -> dict[str, object]:
        return {
            "entries": self.entries,
            "clients": self.clients,
            "backend": self.backend,
            "appends_per_s": round(self.appends_per_s, 1),
            "floor_inserts_per_s": round(self.floor_inserts_per_s, 1),
            "ratio": round(self.appends_per_s / self.floor_inserts_per_s, 3),
            "rpc_floor_per_s": round(self.rpc_floor_per_s, 1),
            "proof_ms": round(self.proof_ms, 3),
            "proof_rpc_ms": round(self.proof_rpc_ms, 3),
            "verify_ms": round(self.verify_ms, 4),
        }


def _entry(i: int) -> bytes:
    """A real consent.granted event (about 250 bytes), indexed into the status map as usual."""
    return encode(
        ConsentGranted(
            "bench",
            sha256(f"subject-{i}".encode()).digest(),
            sha256(f"consent-{i}".encode()).digest(),
            ("model-training", "marketing"),
            2_000_000_000,
            1_700_000_000 + i,
        )
    )


Worker = Callable[[int], None]


def _run_clients(total: int, clients: int, worker: Worker, progress: Progress, label: str) -> float:
    """Run ``worker(i)`` for i in 0..total-1 on ``clients`` threads; return the wall time."""
    counter = iter(range(total))
    lock = threading.Lock()
    task = progress.add_task(label, total=total)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                worker(i)
                progress.advance(task)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def run_ledger_bench(
    entries: int, clients: int, db_url: str | None, progress: Progress
) -> LedgerBench:
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        work = Path(tmp)
        init_pki(
            work / "pki",
            ["coordinator", "bench"],
            network="bench.local",
            force=False,
            now=dt.datetime.now(dt.UTC),
        )
        url = db_url or sqlite_url(work / "coordinator" / "coordinator.db")
        network = LocalNetwork(workdir=work, pki_dir=work / "pki", db_urls={"coordinator": url})
        network.start_coordinator()
        try:
            creds = PartyCredentials.load(work / "pki" / "bench")
            channel = creds.channel(network.parties["coordinator"].endpoint, "coordinator")
            stub = ledger_pb2_grpc.LedgerStub(channel)

            def append(i: int) -> None:
                stub.Append(ledger_pb2.AppendRequest(entries=[_entry(i)]), timeout=30)

            ledger_s = _run_clients(
                entries, clients, append, progress, "ledger appends (gRPC, durable)"
            )

            engine = make_engine(url)
            blob = (
                "BLOB" if url.startswith("sqlite") else "BYTEA"
            )  # same payload size as the ledger
            with engine.begin() as conn:
                conn.execute(text(f"CREATE TABLE bench_floor (id BIGINT PRIMARY KEY, data {blob})"))

            def insert(i: int) -> None:
                with engine.begin() as conn:
                    conn.execute(
                        text("INSERT INTO bench_floor (id, data) VALUES (:i, :d)"),
                        {"i": i, "d": _entry(i)},
                    )

            floor_s = _run_clients(
                entries, clients, insert, progress, "floor: plain inserts, one commit each"
            )
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE bench_floor"))

            health = health_pb2_grpc.HealthStub(channel)

            def ping(_: int) -> None:
                health.Check(health_pb2.HealthCheckRequest(), timeout=30)

            rpc_s = _run_clients(
                entries, clients, ping, progress, "floor: no-op RPCs, same clients"
            )

            time.sleep(0.6)  # let a checkpoint cover every entry
            note = stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=10).note
            verifier = load_coordinator_verifier(work / "pki" / "bench")
            checkpoint = verify_checkpoint(note, [verifier], origin=verifier.name)
            rng = random.Random(0)  # noqa: S311 - picks proof indexes, not secrets
            proof_times, rpc_times, verify_times = [], [], []
            for _ in range(300):
                index = rng.randrange(checkpoint.size)
                t0 = time.perf_counter()
                # proof generation as the server does it, from a cold store (no cached nodes)
                inclusion_proof(SqlLedgerStore(engine), index, checkpoint.size)
                t1 = time.perf_counter()
                proof = stub.GetInclusionProof(
                    ledger_pb2.GetInclusionProofRequest(index=index, tree_size=checkpoint.size),
                    timeout=10,
                )
                t2 = time.perf_counter()
                verify_inclusion(
                    proof.leaf_hash,
                    index,
                    checkpoint.size,
                    list(proof.hashes),
                    checkpoint.root_hash,
                )
                t3 = time.perf_counter()
                proof_times.append(t1 - t0)
                rpc_times.append(t2 - t1)
                verify_times.append(t3 - t2)
            channel.close()
            engine.dispose()
        finally:
            network.stop()
    return LedgerBench(
        entries=entries,
        clients=clients,
        backend="sqlite" if url.startswith("sqlite") else "postgresql",
        appends_per_s=entries / ledger_s,
        floor_inserts_per_s=entries / floor_s,
        rpc_floor_per_s=entries / rpc_s,
        proof_ms=statistics.median(proof_times) * 1000,
        proof_rpc_ms=statistics.median(rpc_times) * 1000,
        verify_ms=statistics.median(verify_times) * 1000,
    )
