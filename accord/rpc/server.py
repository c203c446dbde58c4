"""Create a party's gRPC server: mTLS, the error interceptor, health and reflection.

We use grpcio's synchronous server with a thread pool rather than ``grpc.aio``: every handler
does blocking work (SQLAlchemy sessions, libsodium and ``cryptography`` calls that release the
GIL), so threads keep the handlers simple and the library code reusable from the CLI and tests
without an event loop; fan-out calls use grpcio futures.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from types import FrameType

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from accord.errors import ConfigError
from accord.rpc.authorization import Admission, AuthorizationInterceptor
from accord.rpc.metrics import RpcMetrics
from accord.rpc.status import ErrorStatusInterceptor
from accord.rpc.tls import MAX_MESSAGE_BYTES, PartyCredentials
from accord.rpc.wire_log import recorder_from_env

log = structlog.get_logger(__name__)

Registrar = Callable[[grpc.Server], Iterable[str]]
"""Adds servicers to a server and returns their full service names (for health/reflection)."""


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    services: tuple[str, ...]

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.services):
            self.health.set(name, status)

    def stop(self, grace: float = 5.0) -> None:
        self.set_serving(False)
        self.server.stop(grace).wait()


def create_server(
    listen: str,
    credentials: PartyCredentials,
    register: Registrar,
    *,
    max_workers: int = 32,
    admit: Admission | None = None,
    metrics: CollectorRegistry | None = None,
) -> RunningServer:
    """Bind ``listen`` (``host:port``; port 0 picks a free one) and start serving.

    Every call passes the authorization interceptor (roles from the caller's certificate, one
    table in :mod:`accord.rpc.roles`; ``admit`` adds the coordinator's membership check)
    inside the error interceptor, which turns its refusals into status codes.
    """
    interceptors: list[grpc.ServerInterceptor] = [
        ErrorStatusInterceptor(),
        AuthorizationInterceptor(admit),
    ]
    if metrics is not None:  # outside the error interceptor: counts the final status codes
        interceptors.insert(0, RpcMetrics(metrics))
    recorder = recorder_from_env(credentials.party)
    if recorder is not None:  # outermost, so it sees exactly what crosses the wire
        interceptors.insert(0, recorder)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    services = tuple(register(server))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_secure_port(listen, credentials.server_credentials())
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc}") from exc
    if port == 0:
        raise ConfigError(f"cannot listen on {listen}: the address is taken or invalid")
    server.start()
    running = RunningServer(server, port, health_servicer, services)
    running.set_serving(True)
    return running


def serve_until_signalled(
    running: RunningServer, on_stop: Callable[[], None] = lambda: None
) -> None:
    """Block until SIGTERM or SIGINT, then stop gracefully: health first, then in-flight calls."""
    stopping = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        log.info("shutting down", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    stopping.wait()
    running.stop()
    on_stop()
