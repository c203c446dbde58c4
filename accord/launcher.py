"""Start a local network (a coordinator and nodes) as separate processes on loopback.

Used by ``accord demo`` and by the integration tests, so both exercise the same real
processes, ports, certificates and databases a deployment would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accord.errors import Unavailable
from accord.rpc.endpoint import ENDPOINT_FILE, METRICS_ENDPOINT_FILE, wait_for_endpoint

# a coordinator stops its SuperLink, then gRPC (5 s grace); on a loaded host that took > 15 s
STOP_TIMEOUT_S = 30.0


@dataclass
class PartyProcess:
    name: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    endpoint: str = ""

    def wait_ready(self, timeout_s: float = 60.0) -> str:
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise Unavailable(
                    f"{self.name} exited with code {self.process.returncode} while starting; "
                    f"last log lines:\n{tail(self.log_path)}"
                )
            if (self.data_dir / ENDPOINT_FILE).exists():
                self.endpoint = wait_for_endpoint(self.data_dir, 1.0)
                return self.endpoint
            time.sleep(0.05)
        raise Unavailable(f"{self.name} did not come up in {timeout_s:.0f} s; see {self.log_path}")

    @property
    def metrics_endpoint(self) -> str:
        """host:port of the party's Prometheus endpoint (written before it serves)."""
        path = self.data_dir / METRICS_ENDPOINT_FILE
        if not path.exists():
            raise Unavailable(f"{self.name} serves no metrics (no {path})")
        return path.read_text().strip()

    def terminate(self) -> int:
        """SIGTERM, then wait; SIGKILL only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def accord_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "accord", "--log-format", "json", *args]


@dataclass
class LocalNetwork:
    """A coordinator and nodes under ``workdir``, each in its own process."""

    workdir: Path
    pki_dir: Path
    db_urls: dict[str, str] = field(default_factory=dict)
    parties: dict[str, PartyProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # Every party serves Prometheus metrics here (port 0: each its own); None: none do.
    metrics_listen: str | None = "127.0.0.1:0"

    def _spawn(self, name: str, data_dir: Path, args: list[str]) -> PartyProcess:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / ENDPOINT_FILE).unlink(missing_ok=True)
        (data_dir / METRICS_ENDPOINT_FILE).unlink(missing_ok=True)
        log_dir = self.workdir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                accord_command(*args), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        party = PartyProcess(name, data_dir, log_path, process)
        self.parties[name] = party
        return party

    def _metrics_args(self) -> list[str]:
        return [] if self.metrics_listen is None else ["--metrics-listen", self.metrics_listen]

    def node_dir(self, channel: str) -> Path:
        return self.workdir / "nodes" / channel

    def start_coordinator(self, listen: str = "127.0.0.1:0") -> PartyProcess:
        data_dir = self.workdir / "coordinator"
        args = ["coordinator", "serve", "--data-dir", str(data_dir)]
        args += ["--pki", str(self.pki_dir / "coordinator"), "--listen", listen]
        if "coordinator" in self.db_urls:
            args += ["--db", self.db_urls["coordinator"]]
        args += self._metrics_args()
        party = self._spawn("coordinator", data_dir, args)
        party.wait_ready()
        return party

    def start_node(
        self, channel: str, role: str, listen: str = "127.0.0.1:0", extra: Sequence[str] = ()
    ) -> PartyProcess:
        """``extra``: further `accord node serve` options (e.g. --require-consent-proofs)."""
        coordinator = self.parties["coordinator"].endpoint
        args = ["node", "serve", "--channel", channel, "--role", role]
        args += ["--data-dir", str(self.node_dir(channel)), "--pki", str(self.pki_dir / channel)]
        args += ["--coordinator", coordinator, "--listen", listen]
        if channel in self.db_urls:
            args += ["--db", self.db_urls[channel]]
        args += self._metrics_args()
        return self._spawn(channel, self.node_dir(channel), [*args, *extra])

    def stop(self) -> dict[str, int]:
        """Stop nodes first, then the coordinator; return each exit code."""
        codes: dict[str, int] = {}
        for name in sorted(self.parties, key=lambda n: n == "coordinator"):
            codes[name] = self.parties[name].terminate()
        return codes

    def kill_all(self) -> None:
        for party in self.parties.values():
            party.kill()
