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

Needs root and iproute2 (CI runs as root); skipped elsewhere, failed under CI=true.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.data.uci import split_by_channel, synthesize

sys.path.insert(0, str(Path(__file__).parent))
from hosts import Host, Hosts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

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
COORDINATOR = "10.77.0.1:50051"


def _accord_root(*args: str, timeout: float = 120) -> None:
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


def _admit(hosts: Hosts, operator: Path) -> None:
    """Own keys: each party requests in its own folder; the operator signs; certificates back."""
    _accord_root("pki", "ca", "--dir", str(operator / "ca"))
    for party, role in ROLES.items():
        host = hosts[party]
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
        csr = operator / f"{party}.csr"
        shutil.copyfile(host.folder / "pki" / "request.csr", csr)  # the request is public
        if party == "outsider":
            members = (operator / "ca" / "members.json").read_bytes()
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
            str(operator / f"{party}.crt"),
        )
        if party == "outsider":  # the operator signed, but never listed it
            (operator / "ca" / "members.json").write_bytes(members)
    vkey = hosts["coordinator"].folder / "pki" / "coordinator.vkey"
    shutil.copyfile(vkey, operator / "coordinator.vkey")
    for party in ROLES:
        host = hosts[party]
        cert = host.give(operator / f"{party}.crt")
        ca = host.give(operator / "ca" / "ca.crt")
        extra = (
            []
            if party == "coordinator"
            else ["--coordinator-key", str(host.give(operator / "coordinator.vkey"))]
        )
        if party in NODES:  # nodes seal every data use's consent reference to the auditor
            extra += ["--auditor-cert", str(host.give(operator / "auditor.crt"))]
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
    members = hosts["coordinator"].give(operator / "ca" / "members.json")
    shutil.move(members, hosts["coordinator"].folder / "pki" / "members.json")


@pytest.fixture(scope="module")
def network() -> Iterator[Hosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("setpriv") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the multi-host test needs root, iproute2 and setpriv under CI")
        pytest.skip("needs root, iproute2 and setpriv (network namespaces, per-party users)")
    root = Path(tempfile.mkdtemp(prefix="accord-hosts-", dir="/tmp"))
    root.chmod(0o755)  # each party's own folder inside stays 0700
    operator = root / "operator"
    operator.mkdir(mode=0o700)
    hosts = Hosts.create(root, list(ROLES), "coordinator")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _admit(hosts, operator)
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
        coordinator = hosts["coordinator"]
        processes.append(
            coordinator.spawn(
                "coordinator",
                "serve",
                "--data-dir",
                str(coordinator.folder / "data"),
                "--pki",
                str(coordinator.folder / "pki"),
                "--listen",
                COORDINATOR,
                "--fleet-listen",
                "0.0.0.0:9092",
                "--fleet-advertise",
                "coordinator:9092",
                "--metrics-listen",
                "10.77.0.1:9100",
            )
        )
        _wait_for_file(coordinator.folder / "data" / "endpoint", processes[-1], coordinator.log)
        for channel, role in NODES.items():
            host = hosts[channel]
            processes.append(
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
                    COORDINATOR,
                    "--listen",
                    f"{host.ip}:50052",
                    "--metrics-listen",
                    f"{host.ip}:9100",
                )
            )
        for channel, process in zip(NODES, processes[1:], strict=True):
            host = hosts[channel]
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
        label = hosts["label"]
        _ok(label.run("align", "--coordinator", COORDINATOR, "--pki", str(label.folder / "pki")))
        hosts.operator = operator  # type: ignore[attr-defined]
        yield hosts
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        hosts.close()
        shutil.rmtree(root, ignore_errors=True)


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


def test_the_same_training_on_one_machine_reaches_the_same_auc(network: Hosts) -> None:
    """Last (it reads every party's folder as root, as only a one-machine demo may): Flower's
    simulation over the same stores, seed and rounds gives the held-out AUC of the run above."""
    coordinator = network["coordinator"]
    reports = coordinator.folder / "data" / "training"
    (path,) = [p for p in reports.glob("train-*.json") if "progress" not in p.name]
    report = json.loads(path.read_text())
    layout = network.root / "layout"
    (layout / "nodes").mkdir(parents=True)
    (layout / "pki").mkdir()
    (layout / "coordinator").symlink_to(coordinator.folder / "data")
    for party in ("coordinator", *NODES):
        (layout / "pki" / party).symlink_to(network[party].folder / "pki")
    for channel in NODES:
        (layout / "nodes" / channel).symlink_to(network[channel].folder / "data")
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
