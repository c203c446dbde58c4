"""`accord bench score`: touchpoint requests against a trained network, vs a no-work fan-out.

Setup (untimed): a coordinator and four node processes on synthetic data, consents, one
alignment and a short training. Timed: ``requests`` scoring requests from ``concurrency``
concurrent touchpoints, each the full protocol (a fresh holder key, Begin, one key-bound
presentation per node, Score: the coordinator resolves the customer at the label node and fans
out CHECK then COMPUTE to the feature nodes). The floor: the same clients calling ``Probe``,
which makes the coordinator fan out no-op health checks to the same node processes.
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress

from accord.coordinator.train_job import NetworkLayout, train_network
from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.errors import AccordError
from accord.launcher import LocalNetwork
from accord.node import store
from accord.pki_layout import COORDINATOR, init_pki
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.scoring.split_model import SplitConfig
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade
from accord.touchpoint import ask, subject

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}
PARTIES = ["coordinator", *ROLES, "marketer"]


def _cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "accord", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AccordError(f"setup step `accord {args[0]}` failed: {done.stderr.strip()[-300:]}")


def _run(
    total: int, concurrency: int, work: Callable[[int], bool], progress: Progress, label: str
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))
    task = progress.add_task(label, total=total)

    def loop() -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            started = time.perf_counter()
            try:
                ok = work(i)
            except Exception:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1
            progress.advance(task)

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_score_bench(
    requests: int, concurrency: int, progress: Progress, customers: int = 2000
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-score-") as tmp:
        work = Path(tmp)
        init_pki(
            work / "pki", PARTIES, network="bench.local", force=False, now=dt.datetime.now(dt.UTC)
        )
        split = split_by_channel(synthesize(customers), "full")
        split.write(work / "data", consents_seed=1)
        network = LocalNetwork(workdir=work, pki_dir=work / "pki")
        setup = progress.add_task("setup: network, consents, alignment, training", total=4)
        for channel in ROLES:
            engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
            upgrade(engine, "node")
            store.import_table(
                engine, read_channel_table(work / "data" / f"{channel}.csv"), channel
            )
            engine.dispose()
        network.start_coordinator()
        for channel, role in ROLES.items():
            network.start_node(channel, role)
        try:
            for channel in ROLES:
                network.parties[channel].wait_ready()
            progress.advance(setup)
            endpoint = network.parties["coordinator"].endpoint
            for channel in ROLES:
                _cli(
                    "consent",
                    "import",
                    "--file",
                    str(work / "data" / f"{channel}.consents.csv"),
                    "--node",
                    network.parties[channel].endpoint,
                    "--pki",
                    str(work / "pki" / channel),
                )
            progress.advance(setup)
            _cli("align", "--coordinator", endpoint, "--pki", str(work / "pki" / "label"))
            progress.advance(setup)
            train_network(NetworkLayout(work), config=SplitConfig(rounds=3))
            progress.advance(setup)
            refs = read_channel_table(work / "data" / "label.csv").refs
            credentials = PartyCredentials.load(work / "pki" / "marketer")
            coordinator_channel = credentials.channel(endpoint, COORDINATOR)
            stub = scoring_pb2_grpc.ScoringStub(coordinator_channel)

            def score_one(i: int) -> bool:
                answer = ask(stub, "checkout", subject(refs[i % len(refs)]), "marketing", retries=0)
                return bool(
                    answer.scored
                    or answer.explanation.startswith(("cannot score", "only", "the customer"))
                )

            def probe(i: int) -> bool:
                return len(stub.Probe(scoring_pb2.ProbeRequest(), timeout=5).nodes) == 3

            for i in range(20):  # warm channels, caches and the model
                score_one(i)
            floor, floor_errors, _ = _run(
                requests, concurrency, probe, progress, "floor: no-work fan-out"
            )
            latencies, errors, wall = _run(
                requests, concurrency, score_one, progress, "scoring requests"
            )
            coordinator_channel.close()
        finally:
            network.stop()
    return {
        "requests": requests,
        "concurrency": concurrency,
        "p50_ms": round(_pct(latencies, 0.50), 2),
        "p99_ms": round(_pct(latencies, 0.99), 2),
        "rps": round(requests / wall, 1),
        "errors": errors,
        "floor_p50_ms": round(statistics.median(floor) * 1000, 2),
        "floor_p99_ms": round(_pct(floor, 0.99), 2),
        "floor_errors": floor_errors,
    }
