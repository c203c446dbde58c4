"""Client-side helpers: describe a failed call in one line a person can act on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc

T = TypeVar("T")

# Words gRPC uses when no connection could be made at all (as opposed to a server's answer).
_TRANSPORT_HINTS = ("connect", "refused", "resolve", "dns", "handshake", "no details", "socket")


def rpc_code(err: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(err, "code", None)
    return code() if callable(code) else None


def rpc_details(err: grpc.RpcError) -> str:
    details = getattr(err, "details", None)
    text = details() if callable(details) else None
    return text or "no details"


def describe_rpc_error(err: grpc.RpcError, peer: str) -> str:
    code = rpc_code(err)
    name = code.name if code is not None else "UNKNOWN"
    if code == grpc.StatusCode.UNAVAILABLE:
        return (
            f"{peer} is unreachable ({rpc_details(err)}); is it running, and is the address right?"
        )
    return f"{peer} refused the request: {name}: {rpc_details(err)}"


def call_with_retry(
    call: Callable[[], T],
    *,
    deadline_s: float,
    retry_on: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.UNAVAILABLE,),
    pause_s: float = 0.2,
) -> T:
    """Retry ``call`` while it fails with a transient status, until ``deadline_s`` passes."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return call()
        except grpc.RpcError as err:
            if rpc_code(err) not in retry_on or time.monotonic() >= give_up:
                raise
            time.sleep(pause_s)
            pause_s = min(pause_s * 1.5, 2.0)
