"""Prometheus metrics: the RPC interceptor on a real gRPC server, the HTTP endpoint, and the
coordinator's and node's collectors over real (SQLite) stores."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from accord.coordinator.alignment import RunResult
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.metrics import CoordinatorMetrics, TrainingCollector, outcome_of
from accord.coordinator.scoring import Answer
from accord.crypto.keys import NoteSigner
from accord.errors import ConfigError, NotFound, NotPermitted
from accord.node.metrics import NodeCollector
from accord.rpc.metrics import RpcMetrics, serve_metrics
from accord.rpc.status import ErrorStatusInterceptor
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

PING = health_pb2.HealthCheckRequest
PONG = health_pb2.HealthCheckResponse


def _ok(request: PING, context: grpc.ServicerContext) -> PONG:
    return PONG(status=PONG.SERVING)


def _missing(request: PING, context: grpc.ServicerContext) -> PONG:
    raise NotFound("no such thing")


def _bug(request: PING, context: grpc.ServicerContext) -> PONG:
    raise RuntimeError("a bug")


def _stream(request: PING, context: grpc.ServicerContext) -> Iterator[PONG]:
    for _ in range(3):
        yield PONG(status=PONG.SERVING)


def _stream_refused(request: PING, context: grpc.ServicerContext) -> Iterator[PONG]:
    yield PONG(status=PONG.SERVING)
    raise NotPermitted("not you")


def _handlers() -> grpc.GenericRpcHandler:
    unary = {"Ok": _ok, "Missing": _missing, "Bug": _bug}
    streams = {"Stream": _stream, "StreamRefused": _stream_refused}
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(fn, PING.FromString, PONG.SerializeToString)
        for name, fn in unary.items()
    }
    handlers |= {
        name: grpc.unary_stream_rpc_method_handler(fn, PING.FromString, PONG.SerializeToString)
        for name, fn in streams.items()
    }
    return grpc.method_handlers_generic_handler("test.Probe", handlers)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry as exposed, keyed by (name, sorted labels)."""
    from prometheus_client import generate_latest

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }


@pytest.fixture
def probe_server() -> Iterator[tuple[grpc.Channel, CollectorRegistry]]:
    registry = CollectorRegistry()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[RpcMetrics(registry), ErrorStatusInterceptor()],
    )
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, registry
    finally:
        channel.close()
        server.stop(0).wait()


def call(channel: grpc.Channel, method: str, stream: bool = False) -> grpc.StatusCode:
    request = PING.SerializeToString
    if stream:
        rpc = channel.unary_stream(f"/test.Probe/{method}", request, PONG.FromString)
    else:
        rpc = channel.unary_unary(f"/test.Probe/{method}", request, PONG.FromString)
    try:
        result = rpc(PING(), timeout=5)
        if stream:
            list(result)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_calls_are_counted_by_method_and_final_status_and_timed(probe_server) -> None:  # type: ignore[no-untyped-def]
    channel, registry = probe_server
    assert call(channel, "Ok") == grpc.StatusCode.OK
    assert call(channel, "Ok") == grpc.StatusCode.OK
    assert call(channel, "Missing") == grpc.StatusCode.NOT_FOUND
    assert call(channel, "Bug") == grpc.StatusCode.INTERNAL
    assert call(channel, "Stream", stream=True) == grpc.StatusCode.OK
    assert call(channel, "StreamRefused", stream=True) == grpc.StatusCode.PERMISSION_DENIED
    # a method the server does not implement never reaches the interceptor: callers cannot
    # invent label values
    assert call(channel, "Invented") == grpc.StatusCode.UNIMPLEMENTED
    got = samples(registry)

    def count(method: str, code: str) -> float:
        key = (("code", code), ("method", f"/test.Probe/{method}"))
        return got.get(("accord_rpc_requests_total", key), 0.0)

    assert count("Ok", "OK") == 2
    assert count("Missing", "NOT_FOUND") == 1
    assert count("Bug", "INTERNAL") == 1
    assert count("Stream", "OK") == 1  # one call, however many messages it streamed
    assert count("StreamRefused", "PERMISSION_DENIED") == 1
    methods = {dict(labels).get("method") for (_, labels) in got}
    assert "/test.Probe/Invented" not in methods
    ok = (("method", "/test.Probe/Ok"),)
    assert got[("accord_rpc_latency_seconds_count", ok)] == 2
    assert 0 < got[("accord_rpc_latency_seconds_sum", ok)] < 5


def test_the_endpoint_serves_the_registry_over_http_on_a_free_port() -> None:
    registry = CollectorRegistry()
    RpcMetrics(registry).requests.labels("/test.Probe/Ok", "OK").inc()
    server = serve_metrics("127.0.0.1:0", registry)
    try:
        host, port = server.endpoint.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with urllib.request.urlopen(f"http://{server.endpoint}/metrics", timeout=5) as reply:
            body = reply.read().decode()
        assert 'accord_rpc_requests_total{code="OK",method="/test.Probe/Ok"} 1.0' in body
        # a second party cannot take the same port: a readable error, not a traceback
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            serve_metrics(server.endpoint, CollectorRegistry())
    finally:
        server.stop()
    for bad in ("9100", "localhost:http", "127.0.0.1:70000"):
        with pytest.raises(ConfigError, match="host:port"):
            serve_metrics(bad, registry)


def test_the_port_is_free_again_after_stop() -> None:
    server = serve_metrics("127.0.0.1:0", CollectorRegistry())
    port = int(server.endpoint.rsplit(":", 1)[1])
    server.stop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_coordinator_metrics_ledger_training_alignment_scoring(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "coordinator.db"))
    upgrade(engine, "coordinator")
    clock = FakeClock(1_800_000_000.0)
    signer = NoteSigner.generate("accord.test/coordinator")
    ledger = Ledger(engine, signer, checkpoint_interval_s=60, events=False, clock=clock)
    ledger.start()
    try:
        registry = CollectorRegistry()
        metrics = CoordinatorMetrics(registry, engine, ledger, clock)
        ledger.append([b"one", b"two", b"three"], appended_by="pay")
        ledger.checkpointer.publish()
        ledger.append([b"four"], appended_by="pay")  # durable, not yet in a checkpoint
        clock.now += 42
        with engine.begin() as conn:
            for model_id, kind, rounds, redone in (("m1", "trust", 3, 1), ("m2", "ltv", 5, 0)):
                conn.execute(
                    text(
                        "INSERT INTO model_version (model_id, kind, alignment_run, training_run, "
                        "created_at, nodes, config, top_state, calibrator, metrics, report, "
                        "consents_as_of, own_channel_scales) VALUES (:m, :k, 'a', 't', 0, '[]', "
                        "'{}', x'00', '{}', '{}', :report, 0, '{}')"
                    ),
                    {
                        "m": model_id,
                        "k": kind,
                        "report": json.dumps({"rounds": rounds, "redone_rounds": redone}),
                    },
                )
        metrics.aligned(RunResult("run", 10, {"pay": (9, 7), "shop": (8, 6)}, 8, 6, 0))
        metrics.alignment_failed()
        for outcome in (
            outcome_of(Answer("r1", True, confidence=1.0)),
            outcome_of(Answer("r2", True, confidence=0.67)),
            outcome_of(Answer("r3", False)),
            "refused",
        ):
            metrics.answered(outcome)
        got = samples(registry)
        assert got[("accord_ledger_entries", ())] == 4
        assert got[("accord_ledger_checkpoint_entries", ())] == 3
        assert got[("accord_checkpoint_age_seconds", ())] == pytest.approx(42, abs=1)
        assert got[("accord_trainings_total", (("kind", "trust"),))] == 1
        assert got[("accord_training_rounds_total", (("kind", "trust"),))] == 3
        assert got[("accord_training_rounds_total", (("kind", "ltv"),))] == 5
        assert got[("accord_training_redone_rounds_total", (("kind", "trust"),))] == 1
        assert got[("accord_alignment_runs_total", (("result", "completed"),))] == 1
        assert got[("accord_alignment_runs_total", (("result", "failed"),))] == 1
        assert got[("accord_alignment_matched_total", (("channel", "pay"),))] == 7
        for outcome in ("scored", "degraded", "not_scored", "refused"):
            assert got[("accord_scoring_answers_total", (("outcome", outcome),))] == 1
    finally:
        ledger.stop()


def test_training_figures_survive_a_database_outage_as_an_empty_scrape(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "never-migrated.db"))
    assert list(TrainingCollector(engine).collect()) == []


def test_node_collector_counts_consents_by_state_customers_and_answered_rounds(
    tmp_path: Path,
) -> None:
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node")
    now = 1_800_000_000
    with engine.begin() as conn:
        for i in range(5):
            conn.execute(
                text(
                    "INSERT INTO customer (local_ref, features, imported_at) VALUES (:r, '{}', 0)"
                ),
                {"r": f"c{i}"},
            )
        states = [("granted", now + 10), ("granted", now + 10), ("granted", now - 10)]
        states += [("pending", now + 10), ("revoked", now + 10)]
        for i, (status, expires) in enumerate(states):
            conn.execute(
                text(
                    "INSERT INTO consent_record (record_id, local_ref, terms, purposes, "
                    "given_at, expires_at, status, subject_commitment, consent_commitment) "
                    "VALUES (:id, 'c0', '{}', '[]', 0, :e, :s, x'00', :c)"
                ),
                {"id": f"r{i}", "e": expires, "s": status, "c": bytes([i])},
            )
        for i in range(4):
            conn.execute(
                text("INSERT INTO answered_round (round_id, run_id) VALUES (:i, 'run')"),
                {"i": bytes([i]) * 32},
            )
    registry = CollectorRegistry()
    registry.register(NodeCollector(engine, FakeClock(now)))
    got = samples(registry)
    assert {
        state: got[("accord_consents", (("state", state),))]
        for state in ("pending", "granted", "expired", "revoked")
    } == {"pending": 1, "granted": 2, "expired": 1, "revoked": 1}
    assert got[("accord_node_customers", ())] == 5
    assert got[("accord_training_rounds_answered_total", ())] == 4
    assert got[("accord_ledger_alarms", ())] == 0
