"""`accord bench soak`: steady scoring and consent churn while parties are killed.

Setup (untimed) is ``accord bench score``'s trained network: a coordinator and four node
processes. Then, for the run's length: touchpoints ask for scores at a steady rate; each node's
own systems grant consents and revoke them again (so the ledger grows all along); an auditor
fetches checkpoints. Meanwhile a seeded plan SIGKILLs the coordinator and each node in turn
and restarts it on the same address (and restarts PostgreSQL once when it backs the
coordinator). Customers the churn touches are never scored, so a revocation's network stop
does not make later answers differ from earlier ones.

Reported: answers (scored, and the not-scored ones by reason), errors by kind, each fault with
the time to recover, acknowledged appends lost (must be 0), checkpoints that do not extend
an earlier one (must be 0), and the resident memory of each process at start and end.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from rich.progress import Progress
from sqlalchemy import create_engine, text

from accord.audit import LedgerClient
from accord.bench.network import ROLES, BenchNetwork, trained_network
from accord.bench.soak_faults import (
    COORDINATOR,
    POSTGRES,
    FaultRecord,
    RecoveryWatch,
    fault_plan,
    rss_mb,
    since,
)
from accord.bench.soak_ledger import (
    AckBook,
    AckedAppend,
    CheckpointChain,
    PendingReceipt,
    verify_final_log,
)
from accord.consent.events import ConsentGranted, ConsentRevoked
from accord.data.uci import local_ref
from accord.errors import AccordError, ConfigError
from accord.node.consent import default_terms
from accord.node.consent_server import terms_to_proto
from accord.pki_layout import load_coordinator_verifier
from accord.proto.v1 import consent_pb2, consent_pb2_grpc, ledger_pb2_grpc, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject

PG_ADMIN_URL = os.environ.get("ACCORD_SOAK_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Reconnect quickly after a restart: gRPC's default backoff (1 s, growing to 2 min) would be
# measured as the server's recovery time.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)
CHURNED_EVERY = 8  # customer ids divisible by this are churned, the others scored
HELD_GRANTS = 3  # each node revokes its oldest soak grant once it holds more than this
RECOVER_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SoakConfig:
    seconds: float
    seed: int = 0
    coordinator_db: str = "sqlite"  # or "postgres"
    customers: int = 1000
    rate: float = 4.0  # scoring requests a second
    churn_every_s: float = 1.0  # at each node, a grant (and a revocation) this often
    fault_every_s: float = 40.0
    scorers: int = 4
    train_rounds: int = 3
    scoring: bool = True  # False: consent churn alone, on an untrained network (short tests)


@dataclass
class Tally:
    """Counts the workers share; every change under one lock."""

    answers: int = 0
    scored: int = 0
    consent_ops: int = 0
    not_scored: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, scored: bool, explanation: str) -> None:
        with self._lock:
            self.answers += 1
            if scored:
                self.scored += 1
            else:
                self.not_scored[_reason(explanation)] += 1

    def consent(self) -> None:
        with self._lock:
            self.consent_ops += 1

    def error(self, op: str, exc: BaseException) -> None:
        cause = exc.__cause__ if isinstance(exc.__cause__, grpc.RpcError) else exc
        if isinstance(cause, grpc.RpcError):
            kind = f"{op} {cause.code().name}"
            sample = str(cause.details())
        else:
            kind, sample = f"{op} {type(exc).__name__}", str(exc)
        with self._lock:
            self.errors[kind] += 1
            self.samples.setdefault(kind, sample[:160])


def _reason(explanation: str) -> str:
    """The explanation without its particulars (counts, names), so like reasons group."""
    return re.sub(r"\d+", "N", explanation.split(":")[0])[:60]


class Worker(threading.Thread):
    """Calls ``step`` until stopped; a step that raises is counted, never fatal."""

    def __init__(self, name: str, stop: threading.Event, tally: Tally) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event, self.tally = stop, tally

    def step(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception as exc:
                self.tally.error(self.name.split("-")[0], exc)
                self.stop_event.wait(0.2)


class Pacer:
    """Hands out send times ``1 / rate`` apart; after a stall it does not send a burst."""

    def __init__(self, rate: float) -> None:
        self.gap, self.next = 1.0 / rate, time.monotonic()
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        with self.lock:
            now = time.monotonic()
            self.next = max(self.next + self.gap, now - self.gap)
            due = self.next
        stop.wait(max(0.0, due - now))


class Scorer(Worker):
    def __init__(
        self,
        name: str,
        stop: threading.Event,
        tally: Tally,
        stub: scoring_pb2_grpc.ScoringStub,
        refs: list[str],
        pacer: Pacer,
        watch: RecoveryWatch,
        rng: random.Random,
    ) -> None:
        super().__init__(name, stop, tally)
        self.stub, self.refs, self.pacer, self.watch, self.rng = stub, refs, pacer, watch, rng

    def step(self) -> None:
        self.pacer.wait(self.stop_event)
        started = time.monotonic()
        answer = ask(
            self.stub,
            "checkout",
            subject(self.rng.choice(self.refs)),
            "marketing",
            retries=0,
            timeout_s=15.0,
        )
        self.tally.answer(answer.scored, answer.explanation)
        touched = {COORDINATOR} | ({"label", *answer.sources} if answer.scored else set())
        self.watch.touch(touched, started, time.monotonic())


class Churner(Worker):
    """A node's own systems: grant a consent to a churned customer, revoke an older one."""

    def __init__(
        self,
        stop: threading.Event,
        tally: Tally,
        node: str,
        stub: consent_pb2_grpc.ConsentStub,
        refs: list[str],
        every_s: float,
        acks: AckBook,
        watch: RecoveryWatch,
        rng: random.Random,
    ) -> None:
        super().__init__(f"consent-{node}", stop, tally)
        self.node, self.stub, self.refs, self.every_s = node, stub, refs, every_s
        self.acks, self.watch, self.rng = acks, watch, rng
        self.held: deque[str] = deque()  # record ids of the consents it granted

    def _receipts(
        self, receipts: list[consent_pb2.ConsentReceipt], kind: str, started: float
    ) -> None:
        touched = {self.node}
        for r in receipts:
            if r.HasField("ledger_index"):  # durable in the coordinator's database
                touched |= {COORDINATOR, POSTGRES}
                self.acks.ack(
                    AckedAppend(r.ledger_index, kind, self.node, bytes(r.consent_commitment))
                )
            elif r.ledger_pending:
                self.acks.owe(
                    PendingReceipt(
                        self.node, r.local_ref, r.record_id, kind, bytes(r.consent_commitment)
                    )
                )
        self.tally.consent()
        self.watch.touch(touched, started, time.monotonic())

    def step(self) -> None:
        self.stop_event.wait(self.rng.uniform(0.5, 1.5) * self.every_s)
        if len(self.held) > HELD_GRANTS:
            record_id = self.held[0]
            started = time.monotonic()
            reply = self.stub.Revoke(
                consent_pb2.RevokeConsentRequest(record_ids=[record_id]), timeout=30
            )
            self.held.popleft()  # only once answered: a failed revocation is asked again
            self._receipts(list(reply.receipts), ConsentRevoked.TYPE, started)
        ref = self.rng.choice(self.refs)
        now = int(time.time())
        terms = terms_to_proto(default_terms(("marketing",), controller=self.node, now=now))
        terms.collection_method = "web-form"
        started = time.monotonic()
        reply = self.stub.Grant(
            consent_pb2.GrantConsentRequest(
                grants=[consent_pb2.ConsentGrant(local_ref=ref, terms=terms)]
            ),
            timeout=30,
        )
        self.held.extend(r.record_id for r in reply.receipts)
        self._receipts(list(reply.receipts), ConsentGranted.TYPE, started)


class Auditor(Worker):
    def __init__(
        self,
        stop: threading.Event,
        tally: Tally,
        stub: ledger_pb2_grpc.LedgerStub,
        chain: CheckpointChain,
    ) -> None:
        super().__init__("checkpoint-auditor", stop, tally)
        self.stub, self.chain = stub, chain

    def step(self) -> None:
        self.chain.step(self.stub)
        self.stop_event.wait(0.5)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL for the coordinator; dropped afterwards."""
    name = f"accord_soak_{uuid.uuid4().hex[:10]}"
    # pre-ping: the connection kept from CREATE is dead after the restart of PostgreSQL
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise ConfigError(f"PostgreSQL at {PG_ADMIN_URL} is not usable: {exc}") from exc
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def restart_postgres() -> None:
    clusters = sorted(os.listdir("/etc/postgresql"))
    if not clusters:
        raise ConfigError("no PostgreSQL cluster under /etc/postgresql to restart")
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "restart"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AccordError(f"restarting PostgreSQL failed: {done.stderr.strip()[-300:]}")


def _kill_and_restart(bench: BenchNetwork, target: str) -> float | None:
    """SIGKILL ``target`` and start it again on the same address; its RSS before the kill."""
    network = bench.network
    party = network.parties[target]
    before = rss_mb(party.process.pid)
    endpoint = party.endpoint
    party.kill()
    if target == COORDINATOR:
        network.start_coordinator(listen=endpoint)
    else:
        network.start_node(target, ROLES[target], listen=endpoint).wait_ready()
    return before


def _memory(bench: BenchNetwork) -> dict[str, float | None]:
    found = {n: rss_mb(p.process.pid) for n, p in bench.network.parties.items()}
    return {**found, "client": rss_mb()}


def run_soak(config: SoakConfig, progress: Progress) -> dict[str, object]:
    if config.seconds <= 0 or config.rate <= 0 or config.fault_every_s <= 0:
        raise ConfigError("the run's length, --rate and --fault-every must be positive")
    with (
        tempfile.TemporaryDirectory(prefix="accord-bench-soak-") as tmp,
        _database(config) as db,
        trained_network(
            Path(tmp),
            progress,
            config.customers,
            coordinator_db=db,
            rounds=config.train_rounds,
            train=config.scoring,
        ) as bench,
    ):
        result = _soak(bench, config, progress)
    # a process that did not stop cleanly after the run is a finding too
    return {**result, "exit_codes": bench.stop_codes}


@contextmanager
def _database(config: SoakConfig) -> Iterator[str | None]:
    if config.coordinator_db == "postgres":
        with postgres_database() as url:
            yield url
    elif config.coordinator_db == "sqlite":
        yield None
    else:
        raise ConfigError("--coordinator-db must be sqlite or postgres")


def _soak(bench: BenchNetwork, config: SoakConfig, progress: Progress) -> dict[str, object]:
    rng = random.Random(config.seed)  # noqa: S311 - seeds the load and faults, no secrets
    network = bench.network
    endpoints = {n: p.endpoint for n, p in network.parties.items()}
    coordinator = endpoints[COORDINATOR]
    churned = set(range(0, config.customers, CHURNED_EVERY))
    churned_label = {local_ref("label", i) for i in churned}
    score_refs = [r for r in bench.table_refs("label") if r not in churned_label]
    channels: list[grpc.Channel] = []

    def open_channel(party: str, target: str) -> grpc.Channel:
        creds = PartyCredentials.load(bench.pki / party)
        channel = creds.channel(endpoints[target], target, FAST_RECONNECT)
        channels.append(channel)
        return channel

    scoring = scoring_pb2_grpc.ScoringStub(open_channel("marketer", COORDINATOR))
    for i in range(20 if config.scoring else 0):  # warm channels, caches and the model (torch)
        who = subject(score_refs[i % len(score_refs)])
        ask(scoring, "checkout", who, "marketing", retries=0, timeout_s=120.0)
    verifier = load_coordinator_verifier(bench.pki / "auditor")
    auditor_channel = open_channel("auditor", COORDINATOR)
    ledger_stub = ledger_pb2_grpc.LedgerStub(auditor_channel)

    stop = threading.Event()
    tally, acks, watch = Tally(), AckBook(), RecoveryWatch()
    chain = CheckpointChain(verifier)
    pacer = Pacer(config.rate)
    workers: list[Worker] = [
        Scorer(
            f"score-{i}",
            stop,
            tally,
            scoring,
            score_refs,
            pacer,
            watch,
            random.Random(rng.random()),  # noqa: S311
        )
        for i in range(config.scorers if config.scoring else 0)
    ]
    for node in ROLES:
        held = set(bench.table_refs(node))
        refs = [r for r in (local_ref(node, i) for i in sorted(churned)) if r in held]
        stub = consent_pb2_grpc.ConsentStub(open_channel(node, node))
        workers.append(
            Churner(
                stop,
                tally,
                node,
                stub,
                refs,
                config.churn_every_s,
                acks,
                watch,
                random.Random(rng.random()),  # noqa: S311
            )
        )
    workers.append(Auditor(stop, tally, ledger_stub, chain))

    plan = fault_plan(
        rng, list(ROLES), config.seconds, config.fault_every_s, config.coordinator_db == "postgres"
    )
    memory_start = _memory(bench)
    faults: list[FaultRecord] = []
    task = progress.add_task("soak", total=config.seconds)
    start = time.monotonic()

    printed = [start]

    def show(note: str = "") -> None:
        elapsed = time.monotonic() - start
        line = (
            f"soak: {tally.answers} answers ({tally.scored} scored), "
            f"{sum(tally.errors.values())} errors, {tally.consent_ops} consent ops, "
            f"{len(faults)}/{len(plan)} faults, {chain.count} checkpoints{note}"
        )
        progress.update(task, completed=min(config.seconds, elapsed), description=line)
        # a log file gets no live bar: a line every half minute, and each fault, instead
        if not progress.console.is_terminal and (note or time.monotonic() - printed[0] >= 30):
            progress.console.print(f"{elapsed:6.0f} s  {line}")
            printed[0] = time.monotonic()

    def sleep_until(t: float) -> None:
        while (left := t - time.monotonic()) > 0:
            show()
            time.sleep(min(1.0, left))

    for w in workers:
        w.start()
    try:
        for planned in plan:
            sleep_until(start + planned.at_s)
            record = _fault(bench, planned.target, start, watch, show)
            faults.append(record)
            show(
                f" — {record.target}: serving after {record.ready_s} s, "
                f"first success after {record.recover_s} s"
            )
        sleep_until(start + config.seconds)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    show(" — checking the final log")
    wall = time.monotonic() - start
    memory_end = _memory(bench)
    acked, pending = acks.snapshot()
    delivered, undelivered = _settle(bench, open_channel, pending)
    auditor = LedgerClient(auditor_channel, verifier, coordinator)
    verdict = verify_final_log(auditor, ledger_stub, chain, acked + delivered)
    for channel in channels:
        channel.close()
    recovered = [f.recover_s for f in faults if f.recover_s is not None]
    restarted = Counter(f.target for f in faults)
    return {
        "seconds": round(wall, 1),
        "seed": config.seed,
        "coordinator_db": config.coordinator_db,
        "customers": config.customers,
        "rate": config.rate,
        "answers": tally.answers,
        "scored": tally.scored,
        "not_scored": dict(tally.not_scored.most_common()),
        "consent_ops": tally.consent_ops,
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors.most_common()),
        "error_samples": tally.samples,
        "faults": [f.figures() for f in faults],
        "recover_s_max": max(recovered, default=None),
        "recover_s_by_target": {
            t: [f.recover_s for f in faults if f.target == t] for t in sorted({*restarted})
        },
        "faults_unrecovered": len(faults) - len(recovered),
        "pending_receipts": len(pending),
        "pending_undelivered": undelivered,
        **verdict.figures(),
        "rss_mb": {
            name: {"start": memory_start.get(name), "end": memory_end.get(name)}
            for name in memory_end
        },
        "restarts": dict(restarted),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _fault(
    bench: BenchNetwork,
    target: str,
    start: float,
    watch: RecoveryWatch,
    show: Callable[[str], None],
) -> FaultRecord:
    show(f" — {'restarting' if target == POSTGRES else 'killing'} {target}")
    record = FaultRecord(target, since(start), "restart" if target == POSTGRES else "sigkill")
    killed_at = time.monotonic()
    if target == POSTGRES:
        # Appends may still land while the restart command is shutting PostgreSQL down, so
        # only a write that started once it is back counts: an acknowledged append.
        restart_postgres()
        back_at = time.monotonic()
        watch.start(target, back_at)
    else:
        watch.start(target, killed_at)
        record.rss_before_mb = _kill_and_restart(bench, target)
        back_at = killed_at
    record.ready_s = round(time.monotonic() - killed_at, 2)
    recovered = watch.wait(target, RECOVER_TIMEOUT_S)
    record.recover_s = None if recovered is None else round(recovered + back_at - killed_at, 2)
    return record


def _settle(
    bench: BenchNetwork,
    open_channel: Callable[[str, str], grpc.Channel],
    pending: list[PendingReceipt],
    wait_s: float = 60.0,
) -> tuple[list[AckedAppend], int]:
    """Wait for the nodes' outboxes to deliver what receipts said was on its way; the
    delivered ones are then checked like acknowledged appends. Returns them and how many
    were still undelivered when the wait ended."""
    stubs = {n: consent_pb2_grpc.ConsentStub(open_channel(n, n)) for n in ROLES}
    delivered: list[AckedAppend] = []
    left = list(pending)
    give_up = time.monotonic() + wait_s
    while left and time.monotonic() < give_up:
        still: list[PendingReceipt] = []
        for p in left:
            try:
                shown = stubs[p.node].Show(
                    consent_pb2.SubjectRequest(local_ref=p.local_ref), timeout=10
                )
            except grpc.RpcError:
                still.append(p)
                continue
            record = next(
                (r for r in json.loads(shown.records_json) if r["recordId"] == p.record_id), None
            )
            key = "grantIndex" if p.kind == ConsentGranted.TYPE else "revokeIndex"
            index = None if record is None else record.get(key)
            if index is None:
                still.append(p)
            else:
                delivered.append(AckedAppend(int(index), p.kind, p.node, p.consent))
        left = still
        if left:
            time.sleep(1.0)
    return delivered, len(left)
