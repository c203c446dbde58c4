"""Record every message a server receives and sends, for privacy audits of what crosses the wire.

Off unless ``ACCORD_WIRE_LOG`` names a folder; then each process appends length-prefixed
records (method, direction, serialized message) to ``<folder>/<party>-<pid>.wire``. Because
every message is received by some server, recording servers alone covers every link. Used by
the tests that prove raw identifiers never leave a node (DESIGN.md P1).
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_interceptor import ServerInterceptor

ENV = "ACCORD_WIRE_LOG"


class WireRecorder(ServerInterceptor):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._lock = threading.Lock()

    def _write(self, method: str, direction: bytes, message: object) -> None:
        if not isinstance(message, Message):
            return
        data = message.SerializeToString()
        name = method.encode()
        with self._lock:
            self._file.write(
                struct.pack(">H", len(name))
                + name
                + direction
                + struct.pack(">I", len(data))
                + data
            )
            self._file.flush()

    def _requests(self, method: str, requests: Iterable[Any]) -> Iterator[Any]:
        for request in requests:
            self._write(method, b"<", request)
            yield request

    def _responses(self, method: str, responses: Iterable[Any]) -> Iterator[Any]:
        for response in responses:
            self._write(method, b">", response)
            yield response

    def intercept(
        self, method: Any, request_or_iterator: Any, context: grpc.ServicerContext, method_name: str
    ) -> Any:
        if isinstance(request_or_iterator, Message):
            self._write(method_name, b"<", request_or_iterator)
        else:
            request_or_iterator = self._requests(method_name, request_or_iterator)
        response = method(request_or_iterator, context)
        if isinstance(response, Message):
            self._write(method_name, b">", response)
            return response
        return self._responses(method_name, response)


def recorder_from_env(party: str) -> WireRecorder | None:
    folder = os.environ.get(ENV)
    if not folder:
        return None
    return WireRecorder(Path(folder) / f"{party}-{os.getpid()}.wire")


def read_records(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """(method, '<' or '>', message bytes) for each record of a wire log."""
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        (name_len,) = struct.unpack_from(">H", data, offset)
        offset += 2
        method = data[offset : offset + name_len].decode()
        offset += name_len
        direction = chr(data[offset])
        offset += 1
        (size,) = struct.unpack_from(">I", data, offset)
        offset += 4
        yield method, direction, data[offset : offset + size]
        offset += size
