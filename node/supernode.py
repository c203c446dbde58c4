"""The node's training participant in its own domain: a Flower SuperNode it starts and keeps.

``accord node serve`` (feature nodes) makes a SuperNode key in its data folder (only the public
half leaves), joins the coordinator's Fleet with it (``Training.JoinFleet`` over the node's
mTLS), and runs ``flower-supernode`` against the Fleet address it is given, checking the
SuperLink's certificate against the network's CA. The SuperNode's ClientApp builds the node's
participant from this node's own settings: its data folder, its PKI folder, its store, read
through its consent gate. Flower starts app processes through :mod:`accord.flower_guard`, so
only Accord's ClientApp ever runs here, whoever submitted the run.

The supervisor restarts the SuperNode when it exits (the coordinator restarted, the network
dropped), joining again first; a coordinator without a SuperLink is asked again now and then.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from accord.flower_guard import guarded_path, write_shims
from accord.flower_process import FLOWER_ENV, free_port, supernode_auth_key
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import training_pb2, training_pb2_grpc
from accord.rpc.tls import CA_FILE, PartyCredentials

log = structlog.get_logger(__name__)

FLOWER_DIR = "flower"
RESTART_S = (2.0, 30.0)  # first and longest wait before restarting the SuperNode
NO_FLEET_RETRY_S = 30.0
STOP_TIMEOUT_S = 15.0


def join_fleet(credentials: PartyCredentials, coordinator: str, public_key: bytes) -> str:
    """Register this node's SuperNode key at the coordinator; the Fleet address it answers."""
    with credentials.channel(coordinator, COORDINATOR) as channel:
        reply = training_pb2_grpc.TrainingStub(channel).JoinFleet(
            training_pb2.JoinFleetRequest(supernode_public_key=public_key), timeout=60
        )
    return str(reply.fleet_endpoint)


@dataclass(frozen=True)
class SuperNodeSettings:
    channel: str
    data_dir: Path
    pki_dir: Path
    coordinator: str
    db_url: str | None = None

    def node_config(self) -> str:
        values = {
            "channel": self.channel,
            "data-dir": str(self.data_dir.resolve()),
            "pki": str(self.pki_dir.resolve()),
            "coordinator": self.coordinator,
            **({"db": self.db_url} if self.db_url else {}),
        }
        return " ".join(f"{k}={json.dumps(v)}" for k, v in values.items())


class SuperNodeSupervisor:
    def __init__(self, settings: SuperNodeSettings, credentials: PartyCredentials) -> None:
        self.settings = settings
        self._credentials = credentials
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="supernode", daemon=True)
        self.root = settings.data_dir.resolve() / FLOWER_DIR
        self.fleet: str | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.root / "supernode.log"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None:  # what it started (superexec, app processes) goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        self._thread.join(timeout=STOP_TIMEOUT_S)

    def _run(self) -> None:
        wait = RESTART_S[0]
        while not self._stop.is_set():
            try:
                public = supernode_auth_key(self.settings.data_dir)
                self.fleet = join_fleet(
                    self._credentials, self.settings.coordinator, public.read_bytes()
                )
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else None
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    log.info("the coordinator runs no SuperLink; not training for now")
                    self._stop.wait(NO_FLEET_RETRY_S)
                else:
                    log.warning("could not join the Fleet", code=str(code))
                    self._stop.wait(wait)
                    wait = min(wait * 2, RESTART_S[1])
                continue
            except Exception as exc:  # a supervisor outlives what goes wrong once
                log.error("could not join the Fleet", error=str(exc))
                self._stop.wait(wait)
                wait = min(wait * 2, RESTART_S[1])
                continue
            code_or_none = self._run_once(public.with_suffix(""))
            if self._stop.is_set():
                return
            log.warning("supernode exited; restarting", code=code_or_none, log=str(self.log_path))
            self._stop.wait(wait)
            wait = min(wait * 2, RESTART_S[1])

    def _run_once(self, private_key: Path) -> int | None:
        assert self.fleet is not None
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        shims = write_shims(self.root / "guard")
        args = [
            str(Path(sys.executable).parent / "flower-supernode"),
            "--superlink",
            self.fleet,
            "--root-certificates",
            str((self.settings.pki_dir / CA_FILE).resolve()),
            "--auth-supernode-private-key",
            str(private_key.resolve()),
            "--node-config",
            self.settings.node_config(),
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ]
        env = {
            "OMP_NUM_THREADS": "1",
            **os.environ,
            **FLOWER_ENV,
            "PATH": guarded_path(shims),
            "FLWR_HOME": str(home),
        }
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
                start_new_session=True,
            )
        self.starts += 1
        log.info("supernode started", fleet=self.fleet, pid=self._process.pid)
        while not self._stop.is_set():
            try:
                return self._process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
        return None


__all__ = ["SuperNodeSettings", "SuperNodeSupervisor", "join_fleet"]
