"""The coordinator's standing SuperLink: feature nodes' SuperNodes join it, runs go through it.

``accord coordinator serve --fleet-listen HOST:PORT`` starts a SuperLink beside the gRPC server
and keeps it for the coordinator's lifetime. Nodes never hand their keys or folders to anyone:

- a feature node calls ``Training.JoinFleet`` with the public half of its SuperNode key; the
  coordinator registers it at its SuperLink under the caller's certificate name (a key already
  registered for that name is replaced), and answers with the Fleet address;
- the operator calls ``Training.Train``; the coordinator writes a one-use ticket (the paths and
  endpoint of its own domain) and submits Accord's app with ``flwr run``; the ServerApp, started
  by the SuperLink, redeems the ticket (:func:`accord.coordinator.flower_app.redeem_ticket`), so
  a run submitted by anyone else does nothing here, and the nodes' guard
  (:mod:`accord.flower_guard`) runs only Accord's apps whatever is submitted.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from accord.coordinator.deployment import CONNECTION, Deployment, Scalar
from accord.coordinator.flower_app import TICKETS_ENV, report_path
from accord.errors import AccordError, InvalidInput, Unavailable
from accord.rpc.endpoint import advertised_endpoint, host_of, port_of
from accord.secrets import write_secret

log = structlog.get_logger(__name__)

MAX_KEY_BYTES = 2048
KEY_PREFIX = b"ecdsa-sha2-nistp384 "
Progress = Callable[[dict[str, object]], None]


@dataclass(frozen=True)
class FleetSettings:
    """What a run needs from the coordinator's own domain (written into each ticket)."""

    data_dir: Path
    pki_dir: Path
    endpoint: str
    db_url: str | None = None


class Fleet:
    def __init__(self, listen: str, settings: FleetSettings, advertise: str | None = None) -> None:
        self.settings = settings
        # what nodes dial: its host must be a name the coordinator's certificate carries
        self._advertise = advertise
        root = settings.data_dir.resolve() / "flower"
        self._tickets = root / "tickets"
        self._tickets.mkdir(parents=True, exist_ok=True)
        self._tickets.chmod(0o700)
        self._keys = root / "supernode-keys"
        self._keys.mkdir(parents=True, exist_ok=True)
        self._deployment = Deployment(
            root,
            settings.pki_dir.resolve(),
            host=host_of(listen),
            port=port_of(listen),
            env={TICKETS_ENV: str(self._tickets)},
            cli_address=advertise,
        )
        self._lock = threading.Lock()  # one `flwr` registration or submission at a time
        self._registered: dict[str, str] = {}  # channel -> key registered this lifetime

    def settings_endpoint(self, endpoint: str) -> None:
        """The coordinator's own gRPC endpoint, known once its server is up."""
        self.settings = replace(self.settings, endpoint=endpoint)

    @property
    def endpoint(self) -> str:
        """The Fleet address nodes are told (``--fleet-advertise``, else the bound one)."""
        if self._advertise is not None:
            return advertised_endpoint(self._deployment.address, 0, self._advertise)
        return self._deployment.address

    def start(self) -> str:
        address = self._deployment.start_superlink()
        log.info("superlink serving", fleet=address)
        return address

    def stop(self) -> None:
        self._deployment.stop()

    def alive(self) -> bool:
        link = self._deployment.superlink
        return link is not None and link.alive()

    # -- nodes ------------------------------------------------------------------------------
    def join(self, channel: str, public_key: bytes) -> str:
        """Register ``channel``'s SuperNode key (replacing an earlier one); the Fleet address."""
        key = public_key.strip()
        if len(key) > MAX_KEY_BYTES or not key.startswith(KEY_PREFIX) or b"\n" in key:
            raise InvalidInput(
                "supernode_public_key must be one OpenSSH ecdsa-sha2-nistp384 public key line"
            )
        if not self.alive():
            raise Unavailable("the coordinator's SuperLink is not running; see its log")
        text = key.decode("ascii", errors="strict")
        with self._lock:
            if self._registered.get(channel) == text:
                return self.endpoint
            self._unregister(channel)
            path = self._keys / f"{channel}.pub"
            path.write_text(text + "\n")
            self._deployment.register_key(channel, path)
            self._registered[channel] = text
        log.info("supernode joined", channel=channel)
        return self.endpoint

    def _unregister(self, channel: str) -> None:
        """Drop SuperNodes registered under ``channel`` (a node that made a new key)."""
        nodes = self._deployment.flwr_json("supernode", "list", CONNECTION).get("nodes")
        for node in nodes if isinstance(nodes, list) else []:
            if isinstance(node, dict) and node.get("name") == channel:
                self._deployment.flwr_json(
                    "supernode", "unregister", str(node.get("node-id")), CONNECTION
                )

    def online(self) -> int:
        return self._deployment.online_nodes()

    # -- runs -------------------------------------------------------------------------------
    def train(
        self,
        run_config: dict[str, Scalar],
        *,
        nodes: int,
        timeout_s: float,
        online_timeout_s: float = 120.0,
        on_progress: Progress | None = None,
    ) -> dict[str, object]:
        """Submit a run with a fresh ticket and wait for its report."""
        run_id = f"train-{uuid.uuid4().hex[:16]}"
        report = report_path(self.settings.data_dir.resolve(), run_id)
        ticket = secrets.token_hex(16)
        write_secret(
            self._tickets / ticket,
            json.dumps(
                {
                    "coordinator-data": str(self.settings.data_dir.resolve()),
                    "coordinator-db": self.settings.db_url or "",
                    "coordinator-pki": str(self.settings.pki_dir.resolve()),
                    "coordinator-endpoint": self.settings.endpoint,
                    "report": str(report),
                }
            ),
        )
        started = time.monotonic()
        try:
            try:
                self._deployment.wait_online(nodes, timeout_s=online_timeout_s)
            except Unavailable:
                if self.online() == 0:
                    raise
                # P8: the run goes on with the nodes that are up; absent ones count as dropped
                log.warning("training without every SuperNode online", online=self.online())
            with self._lock:
                flower_run = self._deployment.submit(
                    {**run_config, "run-id": run_id, "ticket": ticket}
                )
            hook = None if on_progress is None else (lambda _dep, snap: on_progress(snap))
            remaining = max(timeout_s - (time.monotonic() - started), 1.0)
            body = self._deployment.wait(flower_run, report, remaining, hook)
        finally:
            (self._tickets / ticket).unlink(missing_ok=True)
        if body.get("status") != "completed":
            raise AccordError(f"training failed: {body.get('error')}")
        return body


__all__ = ["Fleet", "FleetSettings"]
