"""`accord bench score`: touchpoint requests against a trained network, vs a no-work fan-out.

Setup (untimed): a coordinator and four node processes on synthetic data, consents, one
alignment and a short training. Timed, in a closed loop, ``requests`` scoring requests from
``concurrency`` concurrent touchpoints, or, in an open loop, ``rate`` requests a second for
``seconds`` whatever the answers (latency counts from each request's due time, so queueing
shows). Each request is the full protocol (a fresh holder key, Begin, one key-bound
presentation per node, Score: the coordinator resolves the customer at the label node and fans
out CHECK then COMPUTE to the feature nodes). The floor: the same load calling ``Probe``,
which makes the coordinator fan out no-op health checks to the same node processes.

Beside the latencies: the CPU milliseconds per request each process spent in the phase (the
coordinator, each node, this client), from /proc, with the load average at the phase's end,
since other work on the machine shifts every figure.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from accord.bench.cpu import CpuMeter
from accord.bench.network import ROLES, trained_network
from accord.errors import AccordError
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject

OPEN_LOOP_WORKERS = 64  # threads sending due requests; more than ever wait on answers at once


@dataclass(frozen=True)
class Phase:
    """One timed phase: each request's latency, the errors, the wall time, the CPU spent."""

    latencies: list[float]
    errors: int
    wall: float
    cpu_ms: dict[str, float]
    load: tuple[float, float, float]
    reasons: dict[str, int]  # the commonest errors, so a figure with errors says what they were

    def figures(self, prefix: str = "") -> dict[str, object]:
        return {
            f"{prefix}p50_ms": round(_pct(self.latencies, 0.50), 2),
            f"{prefix}p99_ms": round(_pct(self.latencies, 0.99), 2),
            f"{prefix}rps": round(len(self.latencies) / self.wall, 1),
            f"{prefix}errors": self.errors,
            f"{prefix}error_reasons": self.reasons,
            f"{prefix}cpu_ms_per_request": self.cpu_ms,
            f"{prefix}loadavg": [round(x, 2) for x in self.load],
        }


_REASONS: Counter[str] = Counter()
_REASONS_LOCK = threading.Lock()


def _attempt(work: Callable[[int], bool], i: int) -> bool:
    try:
        return work(i)
    except Exception as exc:
        with _REASONS_LOCK:
            _REASONS[str(exc)[:90]] += 1
        return False


def _closed(
    total: int, concurrency: int, work: Callable[[int], bool], advance: Callable[[], None]
) -> tuple[list[float], int]:
    """``concurrency`` clients, each sending its next request when the last one answered."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def loop() -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            started = time.perf_counter()
            ok = _attempt(work, i)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1
            advance()

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def _open(
    total: int, rate: float, work: Callable[[int], bool], advance: Callable[[], None]
) -> tuple[list[float], int]:
    """Request ``i`` is due at ``i / rate`` s whatever the answers so far; its latency counts
    from that due time, so time spent queued behind slow answers is not hidden."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(i: int, due: float) -> None:
        nonlocal errors
        ok = _attempt(work, i)
        elapsed = time.perf_counter() - due
        with lock:
            latencies.append(elapsed)
            errors += 0 if ok else 1
        advance()

    with ThreadPoolExecutor(max_workers=OPEN_LOOP_WORKERS) as pool:
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            pool.submit(one, i, due)
    return latencies, errors


def _phase(
    label: str,
    load: Load,
    work: Callable[[int], bool],
    meter: CpuMeter,
    progress: Progress,
) -> Phase:
    total = load.total
    task = progress.add_task(label, total=total)

    def advance() -> None:
        progress.advance(task)

    with _REASONS_LOCK:
        _REASONS.clear()
    meter.start()
    started = time.perf_counter()
    if load.rate is None:
        latencies, errors = _closed(total, load.concurrency, work, advance)
    else:
        latencies, errors = _open(total, load.rate, work, advance)
    wall = time.perf_counter() - started
    meter.stop()
    with _REASONS_LOCK:
        reasons = dict(_REASONS.most_common(4))
    return Phase(latencies, errors, wall, meter.ms_per_request(total), os.getloadavg(), reasons)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass(frozen=True)
class Load:
    """Closed loop (``rate`` None: ``concurrency`` clients back to back) or open loop (a
    request every ``1 / rate`` s for ``seconds``)."""

    requests: int = 2000
    concurrency: int = 16
    rate: float | None = None
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.requests if self.rate is None else max(1, round(self.rate * self.seconds))


def run_score_bench(load: Load, progress: Progress, customers: int = 2000) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory(prefix="accord-bench-score-") as tmp,
        trained_network(Path(tmp), progress, customers) as bench,
    ):
        network = bench.network
        endpoint = network.parties["coordinator"].endpoint
        refs = bench.table_refs("label")
        credentials = PartyCredentials.load(bench.pki / "marketer")
        coordinator_channel = credentials.channel(endpoint, COORDINATOR)
        stub = scoring_pb2_grpc.ScoringStub(coordinator_channel)

        def score_one(i: int, timeout_s: float = 10.0) -> bool:
            answer = ask(
                stub,
                "checkout",
                subject(refs[i % len(refs)]),
                "marketing",
                retries=0,
                timeout_s=timeout_s,
            )
            if answer.scored or answer.explanation.startswith(
                ("cannot score", "only", "the customer")
            ):
                return True
            raise AccordError(answer.explanation)

        def probe(i: int) -> bool:
            return len(stub.Probe(scoring_pb2.ProbeRequest(), timeout=5).nodes) == 3

        for i in range(20):  # warm channels, caches and the model (loads torch: slow)
            score_one(i, timeout_s=120.0)
        meter = CpuMeter(
            {
                "client": None,
                **{n: network.parties[n].process.pid for n in ["coordinator", *ROLES]},
            }
        )
        floor = _phase("floor: no-work fan-out", load, probe, meter, progress)
        scored = _phase("scoring requests", load, score_one, meter, progress)
        coordinator_channel.close()
    shape: dict[str, object] = (
        {"requests": load.requests, "concurrency": load.concurrency}
        if load.rate is None
        else {"rate": load.rate, "seconds": load.seconds, "requests": load.total}
    )
    return {**shape, **scored.figures(), **floor.figures("floor_")}
