"""The whole story with every party in its own domain: its own network namespace and address,
its own Unix user, its own folder (mode 0700), its own keys.

Eight hosts on a bridge (10.77.0.0/24): the coordinator, four nodes (pay, shop, social, the
brand's label node), a marketer, an auditor and an outsider. Each party makes its key and a
certificate request in its own folder; the operator (the test, as root, outside every
namespace) signs, and hands back only certificates and public files. Then, each command run in
its party's namespace as its party's user, with nothing but its own folder: admission, data and
consent import, alignment, training through the coordinator's standing SuperLink (each feature
node's SuperNode started by its own `node serve`), scoring at two touchpoints, a revocation, an
audit, and the metrics scraped over the bridge.

Beside it on the same bridge, set up concurrently, the LTV network of the CDNOW scenario: its own
operator and CA, a coordinator, the channels app, web and store and the brand's label node, five
more hosts. It trains the LTV model the same way, matches `accord demo train` over the same
stores, and then trains again while one channel's host is taken down after the first round (P8).

Needs root and iproute2 (CI runs as root); skipped elsewhere, failed under CI=true.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from accord.data.cdnow import CALIBRATION_END
from accord.data.uci import split_by_channel, synthesize

sys.path.insert(0, str(Path(__file__).parent))
from hosts import SUBNET, Host, Hosts

# per test; the first test's setup brings up both networks (the LTV one in its thread), which
# took 12 minutes on a machine loaded twentyfold
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROLES = {
    "coordinator": "coordinator",
    "pay": "feature",
    "shop": "feature",
    "social": "feature",
    "label": "label",
    "marketer": "marketer",
    "auditor": "auditor",
    "outsider": "feature",  # signed by the CA, never listed by the operator
}
NODES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}
CUSTOMERS = 1500
COORDINATOR = f"{SUBNET}.1:50051"

# The LTV network: host -> (party, role). Its hosts' names differ from the trust network's; the
# parties inside carry the names the CDNOW scenario gives them.
LTV_PARTIES = {
    "ltv-coordinator": ("coordinator", "coordinator"),
    "app": ("app", "feature"),
    "web": ("web", "feature"),
    "store": ("store", "feature"),
    "ltv-label": ("label", "label"),
}
LTV_CHANNELS = {"app": "app", "web": "web", "store": "store", "ltv-label": "label"}
LTV_COORDINATOR = f"{SUBNET}.21:50051"  # the second network's first address
# Synthetic CDNOW customers (the demo's generator): about a sixth are held by two or more
# channels, what the federated model scores
LTV_CUSTOMERS = 4000
LTV_ROUNDS = 3
DOWN = "store"  # the host taken down in the P8 run


def _accord_root(*args: str, timeout: float = 300) -> None:
    """The operator's own commands (its CA folder), outside every party's domain."""
    done = subprocess.run(
        [sys.executable, "-m", "accord", *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (done.args[-8:], done.stdout[-2000:], done.stderr[-3000:])
    return done


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], log: Path) -> str:
    give_up = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < give_up, f"{path} never appeared"
        time.sleep(0.2)
    return path.read_text().strip()


def _admit(
    hosts: Hosts,
    operator: Path,
    parties: dict[str, tuple[str, str]],
    unlisted: str | None = None,
) -> None:
    """Own keys: each party (``host -> (party, role)``, the coordinator first) requests in its
    own folder; the operator signs; certificates back. ``unlisted`` is signed, never listed."""
    _accord_root("pki", "ca", "--dir", str(operator / "ca"))
    for name, (party, role) in parties.items():
        host = hosts[name]
        _ok(
            host.run(
                "pki",
                "request",
                "--dir",
                str(host.folder / "pki"),
                "--party",
                party,
                "--role",
                role,
            )
        )
        csr = operator / f"{name}.csr"
        shutil.copyfile(host.folder / "pki" / "request.csr", csr)  # the request is public
        if name == unlisted:
            listed = (operator / "ca" / "members.json").read_bytes()
        _accord_root(
            "pki",
            "sign",
            "--ca",
            str(operator / "ca"),
            "--request",
            str(csr),
            "--role",
            role,
            "--out",
            str(operator / f"{name}.crt"),
        )
        if name == unlisted:  # the operator signed, but never listed it
            (operator / "ca" / "members.json").write_bytes(listed)
    coordinator = hosts[next(iter(parties))]
    shutil.copyfile(coordinator.folder / "pki" / "coordinator.vkey", operator / "coordinator.vkey")
    auditor = next((name for name, (_p, role) in parties.items() if role == "auditor"), None)
    for name, (_party, role) in parties.items():
        host = hosts[name]
        cert = host.give(operator / f"{name}.crt")
        ca = host.give(operator / "ca" / "ca.crt")
        extra = (
            []
            if host is coordinator
            else ["--coordinator-key", str(host.give(operator / "coordinator.vkey"))]
        )
        if auditor is not None and role in ("feature", "label"):
            # nodes seal every data use's consent reference to the auditor
            extra += ["--auditor-cert", str(host.give(operator / f"{auditor}.crt"))]
        _ok(
            host.run(
                "pki",
                "install",
                "--dir",
                str(host.folder / "pki"),
                "--cert",
                str(cert),
                "--ca-cert",
                str(ca),
                *extra,
            )
        )
    members = coordinator.give(operator / "ca" / "members.json")
    shutil.move(members, coordinator.folder / "pki" / "members.json")


def _serve(
    hosts: Hosts,
    coordinator: str,
    endpoint: str,
    nodes: dict[str, tuple[str, str]],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """Start the coordinator, then each node (``host -> (channel, role)``, its data already
    imported) with its consents; the label node aligns the network."""
    host = hosts[coordinator]
    processes.append(
        host.spawn(
            "coordinator",
            "serve",
            "--data-dir",
            str(host.folder / "data"),
            "--pki",
            str(host.folder / "pki"),
            "--listen",
            endpoint,
            "--fleet-listen",
            "0.0.0.0:9092",
            "--fleet-advertise",
            "coordinator:9092",
            "--metrics-listen",
            f"{host.ip}:9100",
        )
    )
    _wait_for_file(host.folder / "data" / "endpoint", processes[-1], host.log)
    started = []
    for name, (channel, role) in nodes.items():
        host = hosts[name]
        started.append(
            host.spawn(
                "node",
                "serve",
                "--channel",
                channel,
                "--role",
                role,
                "--data-dir",
                str(host.folder / "data"),
                "--pki",
                str(host.folder / "pki"),
                "--coordinator",
                endpoint,
                "--listen",
                f"{host.ip}:50052",
                "--metrics-listen",
                f"{host.ip}:9100",
            )
        )
    processes.extend(started)
    for (name, (channel, _role)), process in zip(nodes.items(), started, strict=True):
        host = hosts[name]
        _wait_for_file(host.folder / "data" / "endpoint", process, host.log)
        _ok(
            host.run(
                "consent",
                "import",
                "--file",
                str(host.folder / f"{channel}.consents.csv"),
                "--node",
                f"{host.ip}:50052",
                "--pki",
                str(host.folder / "pki"),
            )
        )
    label = next(hosts[n] for n, (_c, role) in nodes.items() if role == "label")
    _ok(label.run("align", "--coordinator", endpoint, "--pki", str(label.folder / "pki")))


def _snapshot(source: Path, target: Path) -> None:
    """A copy of a party's folder as it is now: SQLite stores through SQLite's own backup (their
    processes still run; a file copy could catch a write halfway), everything else as files. Root
    only reads the party's folder, so nothing in it changes owner."""
    for path in sorted(source.rglob("*")):
        copy = target / path.relative_to(source)
        if path.is_dir() and not path.is_symlink():
            copy.mkdir(parents=True, exist_ok=True)
        elif path.name.endswith((".db-wal", ".db-shm", ".db-journal")):
            continue
        elif not path.is_symlink() and not path.is_file():
            continue  # a socket or a pipe of a running process
        elif path.suffix == ".db":
            copy.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as live:
                with sqlite3.connect(copy) as kept:
                    live.backup(kept)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy, follow_symlinks=False)


def _layout(hosts: Hosts, root: Path, coordinator: str, nodes: dict[str, str]) -> Path:
    """The one-machine layout of a network (``nodes``: host -> channel), as snapshots of every
    party's folder: only a demo on one machine (root here) may read them all, and later tests
    change the stores (a revocation), which must not reach the comparison."""
    layout = root / f"layout-{coordinator}"
    (layout / "nodes").mkdir(parents=True)
    (layout / "pki").mkdir()
    _snapshot(hosts[coordinator].folder / "data", layout / "coordinator")
    _snapshot(hosts[coordinator].folder / "pki", layout / "pki" / "coordinator")
    for name, channel in nodes.items():
        _snapshot(hosts[name].folder / "pki", layout / "pki" / channel)
        _snapshot(hosts[name].folder / "data", layout / "nodes" / channel)
    return layout


def _reports(coordinator: Host) -> set[Path]:
    return {
        p
        for p in (coordinator.folder / "data" / "training").glob("train-*.json")
        if not p.name.endswith(".progress.json")
    }


STAGES = ("train", "p8")


class LtvNetwork:
    """The LTV network's story, in a thread beside the trust network's: bring-up, an LTV
    training through its coordinator and a training that loses a host after its first round
    (the one-machine comparison is the trust network's, which keeps CI inside its time). Each
    stage's outcome is a future its test waits for."""

    def __init__(self, hosts: Hosts, root: Path) -> None:
        self.hosts, self.root = hosts, root
        self.operator = root / "ltv-operator"
        self.operator.mkdir(mode=0o700)
        self.coordinator = hosts["ltv-coordinator"]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stages: dict[str, Future[dict[str, Any]]] = {s: Future() for s in STAGES}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._story, name="ltv-network", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def result(self, stage: str) -> dict[str, Any]:
        return self.stages[stage].result(timeout=1200)

    def close(self) -> None:
        self.stopping.set()
        for process in self.processes:
            process.terminate()
        give_up = time.monotonic() + 60
        while self.thread.is_alive() and time.monotonic() < give_up:
            for name in LTV_PARTIES:  # whatever the story runs now ends with its host
                subprocess.run(["pkill", "-KILL", "-u", self.hosts[name].user], check=False)
            self.thread.join(1)

    def _story(self) -> None:
        stage = STAGES[0]
        try:
            self._bring_up()
            for stage in STAGES:
                if self.stopping.is_set():
                    raise RuntimeError("the module's network was closed")
                self.stages[stage].set_result(getattr(self, f"_{stage}")())
        except BaseException as exc:
            for rest in STAGES[STAGES.index(stage) :]:
                if not self.stages[rest].done():
                    self.stages[rest].set_exception(exc)

    def _bring_up(self) -> None:
        _admit(self.hosts, self.operator, LTV_PARTIES)
        data = self.operator / "data"
        _accord_root(
            "data",
            "cdnow",
            "--out",
            str(data),
            "--customers",
            str(LTV_CUSTOMERS),
            "--consents-seed",
            "5",
        )
        for name, channel in LTV_CHANNELS.items():
            host = self.hosts[name]
            host.give(data / f"{channel}.consents.csv")
            if channel == "label":
                host.give(data / "label.schema.json")
                extra = ["--file", str(host.give(data / "label.csv"))]
            else:
                table = host.give(data / f"{channel}.purchases.csv")
                extra = ["--file", str(table), "--as-of", CALIBRATION_END.isoformat()]
            data_dir = str(host.folder / "data")
            _ok(host.run("node", "import", "--channel", channel, "--data-dir", data_dir, *extra))
        nodes = {name: LTV_PARTIES[name] for name in LTV_CHANNELS}
        _serve(self.hosts, "ltv-coordinator", LTV_COORDINATOR, nodes, self.processes)

    def _train_command(self, rounds: int, seed: int) -> list[str]:
        return self.coordinator.accord(
            "train",
            "--coordinator",
            LTV_COORDINATOR,
            "--pki",
            str(self.coordinator.folder / "pki"),
            "--model",
            "ltv",
            "--rounds",
            str(rounds),
            "--seed",
            str(seed),
        )

    def _train(self) -> dict[str, Any]:
        before = _reports(self.coordinator)
        done = _ok(
            subprocess.run(
                self._train_command(LTV_ROUNDS, 3),
                capture_output=True,
                text=True,
                timeout=900,
                cwd=self.coordinator.folder,
            )
        )
        (path,) = _reports(self.coordinator) - before
        return {"stdout": done.stdout, "report": json.loads(path.read_text())}

    def _p8(self) -> dict[str, Any]:
        """Two rounds; after the first, the DOWN channel's host goes: every process of its user
        (node server, SuperNode, ClientApps) is killed with SIGKILL."""
        before = _reports(self.coordinator)
        progress_files = set((self.coordinator.folder / "data" / "training").glob("*.progress*"))
        output = (self.root / "logs" / "p8-train.out").open("w+")
        process = subprocess.Popen(
            self._train_command(2, 4),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.coordinator.folder,
        )
        killed_at: int | None = None
        give_up = time.monotonic() + 600
        while killed_at is None and process.poll() is None and time.monotonic() < give_up:
            time.sleep(0.2)
            for path in (self.coordinator.folder / "data" / "training").glob("*.progress*"):
                if path in progress_files:
                    continue
                try:
                    snapshot = json.loads(path.read_text())
                except (OSError, ValueError):  # being written
                    continue
                if snapshot.get("stage") == "round" and int(snapshot.get("round", 0)) >= 1:
                    killed_at = int(snapshot["round"])
                    self.hosts[DOWN].take_down()
        returncode = process.wait(timeout=600)
        output.seek(0)
        stdout = output.read()
        output.close()
        assert returncode == 0, stdout[-3000:]
        (path,) = _reports(self.coordinator) - before
        return {"stdout": stdout, "report": json.loads(path.read_text()), "killed_at": killed_at}


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    """Both networks' hosts on one bridge, the LTV network's story started in its thread."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("setpriv") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the multi-host test needs root, iproute2 and setpriv under CI")
        pytest.skip("needs root, iproute2 and setpriv (network namespaces, per-party users)")
    root = Path(tempfile.mkdtemp(prefix="accord-hosts-", dir="/tmp"))
    root.chmod(0o755)  # each party's own folder inside stays 0700
    made = Hosts.create(root, list(ROLES), list(LTV_PARTIES))
    ltv = LtvNetwork(made, root)
    made.ltv = ltv  # type: ignore[attr-defined]
    try:
        ltv.start()
        yield made
    finally:
        ltv.close()
        made.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ltv(hosts: Hosts) -> LtvNetwork:
    return hosts.ltv  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
def network(hosts: Hosts) -> Iterator[Hosts]:
    """The trust network, brought up while the LTV network's thread brings up its own."""
    operator = hosts.root / "operator"
    operator.mkdir(mode=0o700)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _admit(hosts, operator, {p: (p, role) for p, role in ROLES.items()}, "outsider")
        split_by_channel(synthesize(CUSTOMERS), "realistic").write(
            operator / "data", consents_seed=5
        )
        for channel in NODES:
            host = hosts[channel]
            host.give(operator / "data" / f"{channel}.schema.json")
            table = host.give(operator / "data" / f"{channel}.csv")
            host.give(operator / "data" / f"{channel}.consents.csv")
            _ok(
                host.run(
                    "node",
                    "import",
                    "--channel",
                    channel,
                    "--data-dir",
                    str(host.folder / "data"),
                    "--file",
                    str(table),
                )
            )
        nodes = {channel: (channel, role) for channel, role in NODES.items()}
        _serve(hosts, "coordinator", COORDINATOR, nodes, processes)
        yield hosts
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_each_partys_folder_is_closed_to_every_other_party(network: Hosts) -> None:
    parties = [p for p in ROLES if p != "outsider"]
    for reader, owner in itertools.permutations(parties, 2):
        a, b = network[reader], network[owner]
        for target in (b.folder, b.folder / "pki" / "tls.key"):
            done = subprocess.run(a.command("cat", str(target)), capture_output=True, text=True)
            assert done.returncode != 0 and "Permission denied" in done.stderr, (reader, owner)
        assert oct(b.folder.stat().st_mode & 0o777) == "0o700"
        assert b.folder.stat().st_uid == b.uid != a.uid


def test_unlisted_party_and_a_role_claimed_are_refused(network: Hosts) -> None:
    outsider = network["outsider"]
    done = outsider.run(
        "registry", "show", "--coordinator", COORDINATOR, "--pki", str(outsider.folder / "pki")
    )
    assert done.returncode != 0 and "PERMISSION_DENIED" in done.stderr
    assert "Traceback" not in done.stderr
    # a listed feature node may not start an alignment (the brand's role)
    pay = network["pay"]
    done = pay.run("align", "--coordinator", COORDINATOR, "--pki", str(pay.folder / "pki"))
    assert done.returncode != 0 and "PERMISSION_DENIED" in done.stderr
    done = pay.run("train", "--coordinator", COORDINATOR, "--pki", str(pay.folder / "pki"))
    assert done.returncode != 0 and "PERMISSION_DENIED" in done.stderr
    # nothing of the outsider was stored: the registry lists the four nodes only
    auditor = network["auditor"]
    shown = _ok(
        auditor.run(
            "registry", "show", "--coordinator", COORDINATOR, "--pki", str(auditor.folder / "pki")
        )
    )
    assert "outsider" not in shown.stdout
    for channel in NODES:
        assert channel in shown.stdout


def test_training_runs_on_each_nodes_own_host(network: Hosts) -> None:
    coordinator = network["coordinator"]
    done = _ok(
        coordinator.run(
            "train",
            "--coordinator",
            COORDINATOR,
            "--pki",
            str(coordinator.folder / "pki"),
            "--rounds",
            "3",
            "--seed",
            "3",
            timeout=600,
        )
    )
    assert "held-out AUC" in done.stdout
    reports = coordinator.folder / "data" / "training"
    (path,) = [p for p in reports.glob("train-*.json") if "progress" not in p.name]
    report = json.loads(path.read_text())
    assert report["status"] == "completed" and report["dropped_nodes"] == []
    assert sorted(report["flower_nodes"]) == ["pay", "shop", "social"]
    assert 0.5 < report["metrics"]["auc"] <= 1.0
    assert report["exchanges"] == 10  # hello, start, 3 × (embed, backprop), score, finish
    for channel in ("pay", "shop", "social"):
        log = network[channel].folder / "data" / "flower" / "supernode.log"
        assert "query.embed" in log.read_text()
    # the run's ticket was used up; the model is stored under the ledger index the run reported
    assert list((coordinator.folder / "data" / "flower" / "tickets").iterdir()) == []
    with sqlite3.connect(coordinator.folder / "data" / "coordinator.db") as db:
        (index,) = db.execute(
            "SELECT ledger_index FROM model_version WHERE model_id = ?", (report["model_id"],)
        ).fetchone()
    assert index == report["ledger_index"]


def test_the_same_training_on_one_machine_reaches_the_same_auc(network: Hosts) -> None:
    """Right after the training, before any store changes: Flower's simulation over snapshots of
    the same stores (read as root, as only a one-machine demo may), with the same seed and
    rounds, gives the held-out AUC of the run across hosts."""
    coordinator = network["coordinator"]
    (path,) = _reports(coordinator)
    report = json.loads(path.read_text())
    layout = _layout(network, network.root, "coordinator", {c: c for c in NODES})
    out = network.root / "loopback-report"
    _accord_root(
        "demo",
        "train",
        "--network-dir",
        str(layout),
        "--rounds",
        "3",
        "--seed",
        "3",
        "--out",
        str(out),
        timeout=600,
    )
    loopback = json.loads((out / "model.json").read_text())["metrics"]["auc"]
    assert abs(loopback - report["metrics"]["auc"]) <= 0.01, (loopback, report["metrics"])


def _first_ref(path: Path) -> str:
    with path.open() as handle:
        return next(csv.DictReader(handle))["local_ref"]


def test_scoring_at_two_touchpoints_a_revocation_and_an_audit(network: Hosts) -> None:
    marketer, auditor, pay = network["marketer"], network["auditor"], network["pay"]
    ref = _first_ref(network["label"].folder / "label.csv")
    for touchpoint in ("checkout", "product-page"):
        _ok(
            marketer.run(
                "score",
                "--touchpoint",
                touchpoint,
                "--ref",
                ref,
                "--coordinator",
                COORDINATOR,
                "--pki",
                str(marketer.folder / "pki"),
                "--timeout",
                "60",  # the hosts run at a lower priority than the rest of the suite beside them
            )
        )
    customer = _first_ref(pay.folder / "pay.csv")
    _ok(
        pay.run(
            "consent",
            "revoke",
            "--ref",
            customer,
            "--node",
            f"{pay.ip}:50052",
            "--pki",
            str(pay.folder / "pki"),
        )
    )
    note = auditor.folder / "today.note"
    _ok(
        auditor.run(
            "audit",
            "checkpoint",
            "--coordinator",
            COORDINATOR,
            "--pki",
            str(auditor.folder / "pki"),
            "--save",
            str(note),
        )
    )
    _ok(
        auditor.run(
            "audit",
            "violations",
            "--checkpoint",
            str(note),
            "--coordinator",
            COORDINATOR,
            "--pki",
            str(auditor.folder / "pki"),
        )
    )


def _scrape(host: Host) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{host.ip}:9100/metrics", timeout=10) as reply:
        text = reply.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_scraped_over_the_bridge_count_the_story(network: Hosts) -> None:
    # runs after the training and scoring tests above (file order, one module-scoped network)
    metrics = _scrape(network["coordinator"])
    assert sum(v for k, v in metrics.items() if k.startswith("accord_alignment_runs_total")) > 0
    assert metrics['accord_training_rounds_total{kind="trust"}'] > 0
    assert sum(v for k, v in metrics.items() if k.startswith("accord_scoring_answers_total")) > 0
    node = _scrape(network["pay"])
    assert node['accord_consents{state="granted"}'] > 0


# -- the LTV network (its story runs in its own thread from the module's start) -----------------


def test_ltv_trains_on_each_channels_own_host(ltv: LtvNetwork) -> None:
    done = ltv.result("train")
    assert "held-out normalised Gini" in done["stdout"]
    report = done["report"]
    assert report["status"] == "completed" and report["dropped_nodes"] == []
    assert sorted(report["flower_nodes"]) == ["app", "store", "web"]
    assert report["exchanges"] == 2 * LTV_ROUNDS + 4  # hello, start, rounds, score, finish
    m = report["metrics"]
    # held out, over the customers two or more channels hold: the model ranks spend and its
    # 80 % interval holds most. Untrained (learning rate ~0) Gini was -0.39..0.15 and Spearman
    # -0.08..0.14 over four seeds; after 3 rounds 0.39..0.65 and 0.32..0.50
    assert 0.05 < m["scored_fraction"] < 0.5, m
    # trained, not just run: untrained models stayed below 0.15 (four seeds); how far above
    # depends on the alignment's random held-out split, so the bar is the untrained one's
    assert m["gini"] > 0.2, m
    assert 0.5 <= m["interval_coverage"] <= 1.0, m
    # below k each channel's own estimate is scaled by one group sum it released
    assert sorted(report["own_channel_scales"]) == ["app", "store", "web"]
    for channel in ("app", "web", "store"):
        log = ltv.hosts[channel].folder / "data" / "flower" / "supernode.log"
        assert "query.embed" in log.read_text()
    with sqlite3.connect(ltv.coordinator.folder / "data" / "coordinator.db") as db:
        (kind, index) = db.execute(
            "SELECT kind, ledger_index FROM model_version WHERE model_id = ?",
            (report["model_id"],),
        ).fetchone()
    assert kind == "ltv" and index == report["ledger_index"]


def test_p8_a_channels_host_down_mid_training_still_gives_a_model(ltv: LtvNetwork) -> None:
    done = ltv.result("p8")
    assert done["killed_at"] == 1, "the run finished before its first round was reported"
    assert not ltv.hosts[DOWN].running()
    report = done["report"]
    # the run finished without the channel, and says which one dropped
    assert report["status"] == "completed"
    assert report["dropped_nodes"] == [DOWN]
    assert re.search(rf"dropped nodes\W+{DOWN}\b", done["stdout"]), done["stdout"]
    run = report["report"]
    assert run["rounds"] == 2 and run["redone_rounds"] >= 1
    assert any(event.startswith(f"{DOWN} dropped") for event in run["events"])
    # a usable model: held-out customers scored by the channels left, stored and recorded
    m = report["metrics"]
    assert m["scored_fraction"] > 0 and -1 <= m["gini"] <= 1, m
    assert DOWN not in report["own_channel_scales"]  # a host that is down answers nothing
    with sqlite3.connect(ltv.coordinator.folder / "data" / "coordinator.db") as db:
        (index, stored) = db.execute(
            "SELECT ledger_index, report FROM model_version WHERE model_id = ?",
            (report["model_id"],),
        ).fetchone()
    assert index == report["ledger_index"]
    assert json.loads(stored)["dropped_nodes"] == [DOWN]
