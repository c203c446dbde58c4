"""Train on Flower's Deployment Engine: a SuperLink at the coordinator, a SuperNode per node.

The same ServerApp and ClientApp as the simulation (:mod:`accord.coordinator.flower_app`,
:mod:`accord.node.flower_app`), each Flower component in a process of its own, talking HTTPS:

- **SuperLink** (the coordinator's side): ``flower-superlink`` serving its Fleet, Control and
  Runtime APIs on one port, with the coordinator's certificate from the network's PKI
  (``--ssl-certfile/--ssl-keyfile/--ssl-ca-certfile``; the certificate names ``127.0.0.1`` and
  ``localhost``). SuperNode authentication is on (``--enable-supernode-auth``): the SuperLink
  accepts only SuperNodes whose public key the coordinator registered
  (``flwr supernode register``), and every SuperNode request is signed with that node's key.
- **SuperNodes** (one per feature node): ``flower-supernode --root-certificates <node>/ca.crt``
  (the SuperLink must present a certificate of the network's CA), its own Runtime API
  ``--port``, ``--auth-supernode-private-key`` (a P-384 key the node keeps in its data
  directory, ``flower-supernode.key``, made on first use; only the public half leaves) and
  ``--node-config`` naming its channel, data directory, PKI folder and coordinator, from which
  :func:`accord.node.participant.participant_from_settings` builds the node's participant.
- **flwr** (the operator's CLI): a SuperLink connection in ``$FLWR_HOME/config.toml`` with the
  CA as ``root-certificates``; ``flwr run`` submits a Flower app directory written here
  (``pyproject.toml`` only: the apps' code is installed on every party, so runtime dependency
  installation is disabled everywhere).

Flower's TLS is server-side only (the SuperLink's HTTP server does not ask for client
certificates), so a SuperNode proves who it is with SuperNode authentication, not mTLS; the
Accord traffic each ClientApp makes (ledger appends) still uses the node's mTLS credentials.

Every process logs to ``<workdir>/flower/<run-id>/logs/``; each Flower process gets its own
``FLWR_HOME`` in a temporary directory removed afterwards. The ServerApp writes the run report
to ``<coordinator-data>/training/<run-id>.json``; the launcher waits for it (and watches
``flwr ls`` for a run that failed before it could write one).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from accord.coordinator.flower_app import progress_path, report_path
from accord.errors import AccordError, ConfigError, Unavailable
from accord.flower_guard import CLIENTAPP, SERVERAPP, guarded_path, write_shims
from accord.flower_process import FLOWER_ENV, free_port, supernode_auth_key
from accord.pki_layout import COORDINATOR
from accord.rpc.endpoint import WILDCARD_HOSTS
from accord.rpc.tls import CA_FILE, CERT_FILE, KEY_FILE
from accord.scoring.split_model import SplitConfig

CONNECTION = "accord"
APP_NAME = "accord-trust"
STOP_TIMEOUT_S = 15.0
STATUS_POLL_S = 30.0
NODE_SETTINGS = ("data-dir", "pki", "coordinator")

Scalar = str | int | float | bool
ProgressHook = Callable[["Deployment", dict[str, object]], None]


def _tool(name: str) -> str:
    """A Flower executable from this interpreter's environment (its superexec finds its kin)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} is not installed: install Accord with flwr into this venv")
    return found


def _toml(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def coordinator_party_dir(pki_dir: Path) -> Path:
    """The coordinator's folder: ``pki_dir`` itself, or ``pki_dir/coordinator`` (a PKI root)."""
    for candidate in (pki_dir / COORDINATOR, pki_dir):
        if (candidate / CERT_FILE).exists() and (candidate / KEY_FILE).exists():
            return candidate
    raise ConfigError(f"{pki_dir} holds no coordinator credentials (tls.crt, tls.key)")


def app_pyproject(defaults: Mapping[str, Scalar]) -> str:
    """``pyproject.toml`` of the Flower app (written by hand: ``flwr new`` needs the internet)."""
    config = "\n".join(f"{k} = {_toml(v)}" for k, v in defaults.items())
    return f"""[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{APP_NAME}"
version = "0.1.0"
description = "Accord trust model: vertical split learning over masked sums"
license = "Apache-2.0"
# Empty on purpose: the apps ship with Accord, installed on every party.
dependencies = []

[tool.flwr.app]
publisher = "accord"

[tool.flwr.app.components]
serverapp = "{SERVERAPP}"
clientapp = "{CLIENTAPP}"

[tool.flwr.app.config]
{config}
"""


RUN_CONFIG_DEFAULTS: dict[str, Scalar] = {
    "coordinator-data": "",
    "coordinator-db": "",
    "coordinator-pki": "",
    "coordinator-endpoint": "",
    "alignment-run": "",
    "run-id": "",
    "seed": 0,
    "rounds": 0,
    "split-config": "",
    "timeout-s": 300.0,
    "report": "",
    "ticket": "",
}


@dataclass
class FlowerProcess:
    """One Flower process, leader of its own process group (its superexec and apps)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process and whatever it started (a machine that loses power)."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if it does not stop; then clear what it left behind."""
        self.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait()
        self._signal_group(signal.SIGTERM)
        return self.process.returncode


@dataclass
class Deployment:
    """A SuperLink and SuperNodes on this machine, for one training run.

    Use as a context manager: ``stop()`` runs on exit whatever happened.
    """

    run_dir: Path
    coordinator_pki: Path
    tls: bool = True
    supernode_auth: bool = True
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    superlink: FlowerProcess | None = None
    supernodes: dict[str, FlowerProcess] = field(default_factory=dict)
    port: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # host:port the operator's `flwr` CLI dials, when the bound address is not a name in the
    # coordinator's certificate (the CLI checks it)
    cli_address: str | None = None

    def __post_init__(self) -> None:
        if self.supernode_auth and not self.tls:
            raise ConfigError("SuperNode authentication needs TLS (Flower refuses it without)")
        self.logs = self.run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._homes = Path(tempfile.mkdtemp(prefix="accord-flwr-"))
        # Flower starts its app processes by name: the guard's shims come first on PATH
        self._shims = write_shims(self._homes / "guard")

    # -- processes -------------------------------------------------------------------------
    def __enter__(self) -> Deployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _env(self, home: str) -> dict[str, str]:
        path = guarded_path(self._shims)
        flwr_home = self._homes / home
        flwr_home.mkdir(parents=True, exist_ok=True)
        return {
            # One machine runs every party here: one torch thread per process, not one per core.
            "OMP_NUM_THREADS": "1",
            **os.environ,
            **FLOWER_ENV,
            **self.env,
            "PATH": path,
            "FLWR_HOME": str(flwr_home),
        }

    def _spawn(self, name: str, args: list[str], home: str) -> FlowerProcess:
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(home),
                cwd=self.run_dir,
                start_new_session=True,
            )
        return FlowerProcess(name, process, log_path)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start_superlink(self, timeout_s: float = 60.0) -> str:
        """Start the SuperLink on ``self.port`` (0: a free one) and wait until it listens."""
        started = time.perf_counter()
        self.port = self.port or free_port(self.host)
        args = [_tool("flower-superlink"), "--host", self.host, "--port", str(self.port)]
        args += ["--disable-runtime-dependency-installation"]
        if self.tls:
            args += ["--ssl-certfile", str(self.coordinator_pki / CERT_FILE)]
            args += ["--ssl-keyfile", str(self.coordinator_pki / KEY_FILE)]
            args += ["--ssl-ca-certfile", str(self.coordinator_pki / CA_FILE)]
        else:
            args += ["--insecure"]
        if self.supernode_auth:
            args += ["--enable-supernode-auth"]
        self.superlink = self._spawn("superlink", args, "superlink")
        self._write_cli_config()
        give_up = time.monotonic() + timeout_s
        while True:
            if not self.superlink.alive():
                raise Unavailable(
                    f"the SuperLink exited with code {self.superlink.process.returncode}; "
                    f"last log lines:\n{_tail(self.superlink.log_path)}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > give_up:
                    raise Unavailable(
                        f"the SuperLink did not listen in {timeout_s:.0f} s; see "
                        f"{self.superlink.log_path}"
                    ) from None
                time.sleep(0.1)
        self.timings["superlink_s"] = round(time.perf_counter() - started, 3)
        return self.address

    def _cli_address(self) -> str:
        """What the `flwr` CLI dials: loopback for a wildcard bind (a name the coordinator's
        certificate carries), else ``cli_address`` or the bound address."""
        if self.host in WILDCARD_HOSTS:
            return f"127.0.0.1:{self.port}"
        return self.cli_address or self.address

    def _write_cli_config(self) -> None:
        lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
        lines.append(f"address = {_toml(self._cli_address())}")
        if self.tls:
            lines.append(f"root-certificates = {_toml(str(self.coordinator_pki / CA_FILE))}")
        else:
            lines.append("insecure = true")
        home = self._homes / "cli"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text("\n".join(lines) + "\n")

    def flwr(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run the Flower CLI against this SuperLink; its output is appended to flwr.log."""
        done = subprocess.run(
            [_tool("flwr"), *args],
            capture_output=True,
            text=True,
            env=self._env("cli"),
            cwd=self.run_dir,
            timeout=timeout_s,
        )
        with (self.logs / "flwr.log").open("a") as log:
            log.write(f"$ flwr {' '.join(args)}  (exit {done.returncode})\n")
            log.write(done.stdout + done.stderr + "\n")
        return done

    def flwr_json(self, *args: str, timeout_s: float = 120.0) -> dict[str, object]:
        done = self.flwr(*args, "--format", "json", timeout_s=timeout_s)
        try:
            body = json.loads(done.stdout[done.stdout.index("{") :])
        except ValueError:
            body = None
        if done.returncode != 0 or not isinstance(body, dict):
            raise AccordError(
                f"`flwr {' '.join(args)}` failed (exit {done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-800:]}"
            )
        return body

    def register_key(self, channel: str, public_key: Path) -> None:
        """Register a SuperNode's public key (OpenSSH) under ``channel``'s name."""
        self.flwr_json("supernode", "register", str(public_key), CONNECTION, "--name", channel)

    def register(self, channel: str, data_dir: Path) -> Path:
        """Register the node's SuperNode key at the SuperLink; return its private key's path.

        Here the launcher does both halves; across organisations the node makes its key and
        sends only ``flower-supernode.key.pub`` to the coordinator's operator, who registers it.
        """
        public = supernode_auth_key(data_dir)
        self.register_key(channel, public)
        return public.with_suffix("")

    def start_supernode(
        self, channel: str, settings: Mapping[str, Scalar], *, registered: Path | None = None
    ) -> FlowerProcess:
        """Start the node's SuperNode (registering its key first when authenticating)."""
        if self.superlink is None:
            raise ConfigError("start the SuperLink first")
        missing = [k for k in NODE_SETTINGS if k not in settings]
        if missing:
            raise ConfigError(f"settings of {channel!r} lack {', '.join(missing)}")
        node_config = {"channel": channel, **settings}
        args = [_tool("flower-supernode"), "--superlink", self.address]
        args += ["--host", self.host, "--port", str(free_port(self.host))]
        args += ["--node-config", " ".join(f"{k}={_toml(v)}" for k, v in node_config.items())]
        if self.tls:
            args += ["--root-certificates", str(Path(str(settings["pki"])) / CA_FILE)]
        else:
            args += ["--insecure"]
        if self.supernode_auth:
            key = registered or self.register(channel, Path(str(settings["data-dir"])))
            args += ["--auth-supernode-private-key", str(key)]
        process = self._spawn(f"supernode-{channel}", args, f"supernode-{channel}")
        self.supernodes[channel] = process
        return process

    def start_supernodes(self, nodes: Mapping[str, Mapping[str, Scalar]]) -> None:
        """Register every node's key (concurrently: each is a CLI call), then start them."""
        keys: dict[str, Path | None] = dict.fromkeys(nodes)
        if self.supernode_auth:
            with ThreadPoolExecutor(max_workers=max(len(nodes), 1)) as pool:
                futures = {
                    c: pool.submit(self.register, c, Path(str(s["data-dir"])))
                    for c, s in nodes.items()
                }
                keys = {c: f.result() for c, f in futures.items()}
        for channel, settings in nodes.items():
            self.start_supernode(channel, settings, registered=keys[channel])

    def online_nodes(self) -> int:
        """How many SuperNodes the SuperLink counts as online."""
        nodes = self.flwr_json("supernode", "list", CONNECTION).get("nodes")
        if not isinstance(nodes, list):
            return 0
        return len(
            [n for n in nodes if isinstance(n, dict) and str(n.get("status")).lower() == "online"]
        )

    def wait_online(self, count: int, timeout_s: float = 60.0) -> None:
        started = time.perf_counter()
        give_up = time.monotonic() + timeout_s
        while self.online_nodes() < count:
            for process in self.supernodes.values():
                if not process.alive():
                    raise Unavailable(
                        f"{process.name} exited with code {process.process.returncode}; "
                        f"last log lines:\n{_tail(process.log_path)}"
                    )
            if time.monotonic() > give_up:
                raise Unavailable(f"SuperNodes did not come online in {timeout_s:.0f} s")
            time.sleep(0.5)
        self.timings["supernodes_online_s"] = round(time.perf_counter() - started, 3)

    def write_app(self) -> Path:
        app = self.run_dir / "app"
        app.mkdir(parents=True, exist_ok=True)
        (app / "pyproject.toml").write_text(app_pyproject(RUN_CONFIG_DEFAULTS))
        return app

    def submit(self, run_config: Mapping[str, Scalar]) -> int:
        """``flwr run`` the app with ``run_config``; return Flower's run id."""
        unknown = set(run_config) - set(RUN_CONFIG_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown run-config keys: {', '.join(sorted(unknown))}")
        app = self.write_app()
        overrides = self.run_dir / "run-config.toml"
        overrides.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in run_config.items()))
        body = self.flwr_json("run", str(app), CONNECTION, "--run-config", str(overrides))
        if not body.get("success"):
            raise AccordError(f"flwr run did not start the run: {body}")
        return int(str(body["run-id"]))

    def run_status(self, flower_run_id: int) -> str:
        """Flower's status of a run, e.g. ``running`` or ``finished:completed``."""
        runs = self.flwr_json("ls", CONNECTION, "--run-id", str(flower_run_id)).get("runs")
        for run in runs if isinstance(runs, list) else []:
            if isinstance(run, dict) and str(run.get("run-id")) == str(flower_run_id):
                return str(run.get("status", ""))
        return ""

    def wait(
        self,
        flower_run_id: int,
        report: Path,
        timeout_s: float,
        on_progress: ProgressHook | None = None,
    ) -> dict[str, object]:
        """Until the ServerApp has written ``report`` (or the run failed, or time is up)."""
        give_up = time.monotonic() + timeout_s
        next_status = time.monotonic() + STATUS_POLL_S
        seen: object = None
        progress = progress_path(report)
        while True:
            if report.exists():
                body: dict[str, object] = json.loads(report.read_text())
                if body.get("status") != "running":
                    return body
            if on_progress is not None and progress.exists():
                try:
                    snapshot = json.loads(progress.read_text())
                except ValueError:
                    snapshot = None
                if isinstance(snapshot, dict) and snapshot != seen:
                    seen = snapshot
                    on_progress(self, snapshot)
            if self.superlink is None or not self.superlink.alive():
                raise Unavailable("the SuperLink stopped during the run; see its log")
            if time.monotonic() > next_status:
                status = self.run_status(flower_run_id)
                if status.startswith("finished") and not report.exists():
                    time.sleep(1.0)  # the report may be on its way
                    if not report.exists():
                        raise AccordError(
                            f"Flower run {flower_run_id} ended ({status}) without a report; "
                            f"see `flwr log` or {self.logs}"
                        )
                next_status = time.monotonic() + STATUS_POLL_S
            if time.monotonic() > give_up:
                raise Unavailable(
                    f"training did not finish in {timeout_s:.0f} s; logs in {self.logs}"
                )
            time.sleep(0.2)

    def save_run_log(self, flower_run_id: int) -> None:
        """Flower's log of the run (the ServerApp's output) into logs/serverapp.log."""
        try:
            done = self.flwr("log", str(flower_run_id), CONNECTION, "--show", timeout_s=60)
        except subprocess.TimeoutExpired:
            return
        (self.logs / "serverapp.log").write_text(done.stdout + done.stderr)

    def stop(self) -> dict[str, int]:
        """Stop the SuperNodes, then the SuperLink; return exit codes by process name."""
        codes: dict[str, int] = {}
        for process in self.supernodes.values():
            process.terminate()
        for process in self.supernodes.values():
            codes[process.name] = process.stop()
        if self.superlink is not None:
            codes[self.superlink.name] = self.superlink.stop()
        shutil.rmtree(self._homes, ignore_errors=True)
        return codes


def run_on_deployment_engine(
    workdir: Path,
    pki_dir: Path,
    coordinator_data: Path,
    coordinator_endpoint: str,
    nodes: Mapping[str, Mapping[str, Scalar]],
    alignment_run: str | None = None,
    seed: int = 0,
    rounds: int | None = None,
    timeout_s: float = 1800.0,
    *,
    coordinator_db: str | None = None,
    config: SplitConfig | None = None,
    exchange_timeout_s: float = 120.0,
    run_id: str | None = None,
    tls: bool = True,
    supernode_auth: bool = True,
    on_progress: ProgressHook | None = None,
) -> dict[str, object]:
    """Train the trust model on the Deployment Engine and return the ServerApp's run report.

    ``pki_dir``: the network's PKI root (or the coordinator's own folder in it);
    ``nodes``: per feature channel its SuperNode settings (``data-dir``, ``pki`` its party
    folder, ``coordinator`` host:port, optionally ``db``); ``rounds`` overrides ``config``'s;
    ``timeout_s`` bounds the whole run, ``exchange_timeout_s`` how long one exchange waits for
    a node before the run drops it (P8: Flower itself marks a dead SuperNode offline only after
    two missed heartbeats, up to 60 s). ``on_progress`` sees each progress snapshot while the
    run goes (the tests use it to stop a node mid-run).

    The report carries the model id, metrics, ``dropped_nodes``, the ledger index of its
    ``model.version`` record, Flower's exchange count and time, and this launcher's timings
    (``timings``: SuperLink start, SuperNodes online, run wall time, total).
    """
    started = time.perf_counter()
    run_id = run_id or f"train-{uuid.uuid4().hex[:16]}"
    # Flower's processes run elsewhere (their own cwd): every path they get is absolute.
    workdir, coordinator_data = workdir.resolve(), coordinator_data.resolve()
    coordinator_pki = coordinator_party_dir(pki_dir.resolve())
    nodes = {
        channel: {
            k: str(Path(str(v)).resolve()) if k in ("data-dir", "pki") else v
            for k, v in settings.items()
        }
        for channel, settings in nodes.items()
    }
    report = report_path(coordinator_data, run_id)
    split = config or SplitConfig()
    run_config: dict[str, Scalar] = {
        "coordinator-data": str(coordinator_data),
        "coordinator-db": coordinator_db or "",
        "coordinator-pki": str(coordinator_pki),
        "coordinator-endpoint": coordinator_endpoint,
        "alignment-run": alignment_run or "",
        "run-id": run_id,
        "seed": seed,
        "rounds": rounds or split.rounds,
        "split-config": json.dumps(split.to_dict()),
        "timeout-s": float(exchange_timeout_s),
        "report": str(report),
    }
    dep = Deployment(workdir / "flower" / run_id, coordinator_pki, tls, supernode_auth)
    try:
        dep.start_superlink()
        dep.start_supernodes(nodes)
        dep.wait_online(len(nodes))
        submitted = time.perf_counter()
        flower_run_id = dep.submit(run_config)
        remaining = timeout_s - (time.perf_counter() - started)
        body = dep.wait(flower_run_id, report, remaining, on_progress)
        finished = time.perf_counter()
        dep.save_run_log(flower_run_id)
    finally:
        codes = dep.stop()
    timings = {
        **dep.timings,
        "run_s": round(finished - submitted, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    body["flower"] = {
        "superlink": dep.address,
        "tls": tls,
        "supernode_auth": supernode_auth,
        "logs": str(dep.logs),
        "supernodes": {c: p.pid for c, p in dep.supernodes.items()},
        "exit_codes": codes,
    }
    timings["total_s"] = round(time.perf_counter() - started, 3)
    body["timings"] = timings
    if body.get("status") != "completed":
        raise AccordError(f"training on the Deployment Engine failed: {body.get('error')}")
    return body


__all__ = [
    "Deployment",
    "FlowerProcess",
    "app_pyproject",
    "coordinator_party_dir",
    "run_on_deployment_engine",
    "supernode_auth_key",
]
