"""The endpoint file: a party writes ``host:port`` into its data directory once it serves.

Launchers (the demo, tests) wait for this file instead of guessing ports; port 0 can then be
used everywhere, so parallel runs never collide.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from accord.errors import ConfigError, Unavailable

ENDPOINT_FILE = "endpoint"
# Where the party's Prometheus endpoint listens (``--metrics-listen``), written before
# ENDPOINT_FILE, so whoever sees the party serving finds its metrics too.
METRICS_ENDPOINT_FILE = "metrics.endpoint"


def write_endpoint(data_dir: Path, endpoint: str, name: str = ENDPOINT_FILE) -> None:
    tmp = data_dir / f".{name}.tmp"
    tmp.write_text(endpoint + "\n")
    os.replace(tmp, data_dir / name)


def clear_endpoint(data_dir: Path, name: str = ENDPOINT_FILE) -> None:
    (data_dir / name).unlink(missing_ok=True)


def wait_for_endpoint(data_dir: Path, timeout_s: float = 30.0) -> str:
    path = data_dir / ENDPOINT_FILE
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if path.exists():
            return path.read_text().strip()
        time.sleep(0.05)
    raise Unavailable(
        f"no endpoint appeared in {path} within {timeout_s:.0f} s; see that party's log"
    )


def host_of(listen: str) -> str:
    return listen.rsplit(":", 1)[0]


def port_of(listen: str) -> int:
    """The port of ``host:port`` (0: any free one), or a readable ConfigError."""
    _, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"expected HOST:PORT, got {listen!r}")
    return int(port)


WILDCARD_HOSTS = ("0.0.0.0", "[::]", "::", "")  # noqa: S104  (recognised, never bound)


def advertised_endpoint(listen: str, port: int, advertise: str | None) -> str:
    """The ``host:port`` other parties call: ``advertise`` when given, else the listen host
    with the bound port. A wildcard listen address names no host anyone can call, so it needs
    ``advertise`` (e.g. the node's DNS name behind a container network or a Service)."""
    if advertise is not None:
        host, sep, port_text = advertise.rpartition(":")
        if not sep or host in WILDCARD_HOSTS or not port_text.isdigit():
            raise ConfigError(
                f"--advertise must be the host:port other parties can call, got {advertise!r}"
            )
        if not 0 < int(port_text) < 65536:
            raise ConfigError(f"--advertise has no valid port: {advertise!r}")
        return advertise
    host = host_of(listen)
    if host in WILDCARD_HOSTS:
        raise ConfigError(
            f"--listen {listen} names no address others can call; add --advertise HOST:PORT"
        )
    return f"{host}:{port}"
