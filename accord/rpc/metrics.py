"""A party's Prometheus metrics: the gRPC server's calls, and the HTTP endpoint that serves them.

Each process keeps its own :class:`CollectorRegistry` (never the library's global one), so
several parties started in one test process do not share counters. Labels carry only names
fixed by the code (gRPC method and status names, outcomes, states): never a customer's
reference, a key or a message's content. The endpoint is plain HTTP on its own port, apart from
the mTLS gRPC port; bind it where only the operator's scraper can reach it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_interceptor import ServerInterceptor
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from accord.errors import ConfigError

# A health check takes a millisecond, a score a second at most, an alignment minutes.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class RpcMetrics(ServerInterceptor):
    """Counts every call a server answers by full method and final status code, and times it.

    Streaming answers are counted when the stream ends. Only methods the server implements
    reach an interceptor, so a caller cannot make up label values with unknown method names.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "accord_rpc_requests",
            "gRPC calls this party served, by full method and final status code.",
            ("method", "code"),
            registry=registry,
        )
        self.latency = Histogram(
            "accord_rpc_latency_seconds",
            "Time from a call's arrival to its last answer, by full method.",
            ("method",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def _observe(self, method: str, code: grpc.StatusCode, started: float) -> None:
        self.latency.labels(method).observe(time.perf_counter() - started)
        self.requests.labels(method, code.name).inc()

    def _stream(
        self, method: str, responses: Iterable[Any], context: grpc.ServicerContext, started: float
    ) -> Iterator[Any]:
        done = threading.Lock()  # counted once, by whichever comes first

        def observe(code: grpc.StatusCode) -> None:
            if done.acquire(blocking=False):
                self._observe(method, code, started)

        # A caller that stops reading and hangs up ends the call without the stream ever being
        # resumed: the call's end still counts it (as cancelled).
        context.add_callback(lambda: observe(_code(context, grpc.StatusCode.CANCELLED)))
        try:
            yield from responses
        except GeneratorExit:
            observe(grpc.StatusCode.CANCELLED)
            raise
        except BaseException:
            observe(_code(context, grpc.StatusCode.UNKNOWN))
            raise
        observe(_code(context, grpc.StatusCode.OK))

    def intercept(
        self, method: Any, request_or_iterator: Any, context: grpc.ServicerContext, method_name: str
    ) -> Any:
        started = time.perf_counter()
        try:
            response = method(request_or_iterator, context)
        except BaseException:
            self._observe(method_name, _code(context, grpc.StatusCode.UNKNOWN), started)
            raise
        if isinstance(response, Iterable):  # protobuf messages are not iterable; streams are
            return self._stream(method_name, response, context, started)
        self._observe(method_name, _code(context, grpc.StatusCode.OK), started)
        return response


def _code(context: grpc.ServicerContext, otherwise: grpc.StatusCode) -> grpc.StatusCode:
    """The code the handler (or an inner interceptor) set or aborted with, else ``otherwise``."""
    current = getattr(context, "code", None)
    code = current() if callable(current) else None
    return code if isinstance(code, grpc.StatusCode) else otherwise


@dataclass
class MetricsServer:
    """The HTTP endpoint serving ``/metrics`` (any path answers the same)."""

    httpd: WSGIServer
    thread: threading.Thread
    endpoint: str  # host:port as bound

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_metrics(listen: str, registry: CollectorRegistry) -> MetricsServer:
    """Serve ``registry`` over HTTP on ``listen`` (``host:port``; port 0 picks a free one)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"--metrics-listen must be host:port, got {listen!r}")
    bind = host.strip("[]") or "0.0.0.0"  # noqa: S104  (":9100" means every address, as usual)
    try:
        httpd, thread = start_http_server(int(port_text), addr=bind, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {listen}: {exc.strerror or exc}") from exc
    return MetricsServer(httpd, thread, f"{host or bind}:{httpd.server_port}")
