"""Pushes the newest signed registry to every registered node, until each has accepted it."""

from __future__ import annotations

import threading

import grpc
import structlog

from accord.coordinator.registry import NodeRegistry
from accord.proto.v1 import node_pb2_grpc
from accord.rpc.client import describe_rpc_error
from accord.rpc.tls import PartyCredentials

log = structlog.get_logger(__name__)

RETRY_SECONDS = 2.0
CALL_TIMEOUT = 5.0


class RegistryPublisher:
    """A background thread; :meth:`notify` after every registry change."""

    def __init__(self, registry: NodeRegistry, credentials: PartyCredentials) -> None:
        self._registry = registry
        self._credentials = credentials
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._acknowledged: dict[str, int] = {}
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._thread = threading.Thread(target=self._run, name="registry-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.notify()

    def notify(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        for channel in self._channels.values():
            channel.close()

    def _channel(self, endpoint: str, channel_name: str) -> grpc.Channel:
        key = (endpoint, channel_name)
        if key not in self._channels:
            self._channels[key] = self._credentials.channel(endpoint, channel_name)
        return self._channels[key]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=RETRY_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            signed = self._registry.current()
            view = self._registry.view()
            for node in view.nodes:
                if self._acknowledged.get(node.channel) == view.version:
                    continue
                stub = node_pb2_grpc.NodeServiceStub(self._channel(node.endpoint, node.channel))
                try:
                    reply = stub.UpdateRegistry(signed, timeout=CALL_TIMEOUT)
                except grpc.RpcError as err:
                    log.warning(
                        "registry push failed",
                        node=node.channel,
                        reason=describe_rpc_error(err, node.channel),
                    )
                    continue
                self._acknowledged[node.channel] = reply.accepted_version
