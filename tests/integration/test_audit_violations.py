"""`accord audit violations` over real processes: forged uses are found, a clean network has none.

The forged entries bypass every node's consent gate: they are appended straight through the
coordinator's ledger API with a node's own certificate, which the coordinator accepts because
they are well-formed events written in that node's name. Only an independent replay finds them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest
from helpers import make_pki

from accord.consent.events import ConsentGranted, ConsentRevoked, DataUse, Event, Use, encode
from accord.launcher import LocalNetwork
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.tls import PartyCredentials

T = int(time.time())


def audit(network: LocalNetwork, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "audit",
            *args,
            "--coordinator",
            network.parties["coordinator"].endpoint,
            "--pki",
            str(network.pki_dir / "auditor"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def append(network: LocalNetwork, party: str, events: list[Event]) -> list[int]:
    creds = PartyCredentials.load(network.pki_dir / party)
    with creds.channel(network.parties["coordinator"].endpoint, "coordinator") as channel:
        reply = ledger_pb2_grpc.LedgerStub(channel).Append(
            ledger_pb2.AppendRequest(entries=[encode(e) for e in events]), timeout=10
        )
    return [a.index for a in reply.appended]


def saved_checkpoint(network: LocalNetwork, size: int, path: Path) -> None:
    """Save a checkpoint of at least ``size`` entries with `accord audit checkpoint`."""
    give_up = time.monotonic() + 15
    while True:
        done = audit(network, "checkpoint", "--save", str(path))
        assert done.returncode == 0, done.stderr
        if int(path.read_text().split("\n")[1]) >= size:
            return
        assert time.monotonic() < give_up, path.read_text()
        time.sleep(0.1)


def table_rows(stdout: str) -> dict[int, list[str]]:
    """The body rows of a Rich table keyed by their first cell (an entry index)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("\u2502")[1:-1]]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


def h(text: str) -> bytes:
    return sha256(text.encode()).digest()


def grant(n: str, purposes: tuple[str, ...] = ("model-training",), expires: int = T + 10**6):
    return ConsentGranted("pay", h(f"subject-{n}"), h(f"consent-{n}"), purposes, expires, T)


def use(n: str, index: int, node: str = "pay", purpose: str = "model-training", at: int = T + 60):
    return DataUse(node, purpose, "forged", at, (Use(h(f"subject-{n}"), h(f"consent-{n}"), index),))


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[LocalNetwork]:
    network = LocalNetwork(workdir=tmp_path, pki_dir=make_pki(tmp_path / "pki"))
    network.start_coordinator()
    yield network
    network.stop()


def test_forged_uses_without_consent_are_found_and_named(
    coordinator: LocalNetwork, tmp_path: Path
) -> None:
    net = coordinator
    granted = append(
        net,
        "pay",
        [grant("a"), grant("b"), grant("c", ("risk-scoring",)), grant("d", expires=T + 5)],
    )
    a, b, c, d = granted
    (revoked,) = append(
        net, "pay", [ConsentRevoked("pay", h("subject-b"), h("consent-b"), T, "withdrawn")]
    )
    clean = append(net, "pay", [use("a", a)])
    forged = {
        append(net, "pay", [use("b", b)])[0]: f"revoked at entry {revoked}",
        append(net, "pay", [use("c", c)])[0]: "covers risk-scoring, not model-training",
        append(net, "pay", [use("never", 0)])[0]: "no consent with this commitment",
        append(net, "shop", [use("a", a, node="shop")])[0]: "granted at node 'pay'",
        append(net, "pay", [use("d", d, at=T + 100)])[0]: "expired at",
        append(net, "pay", [use("a", d)])[0]: f"cites a grant at entry {d}",
    }
    note = tmp_path / "checkpoint.note"
    saved_checkpoint(net, max(forged) + 1, note)

    result = audit(net, "violations", "--checkpoint", str(note))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{len(forged)} of {len(forged) + 1} uses had no valid consent" in lines[0]
    assert ", ".join(str(i) for i in sorted(forged)) in lines[0]
    rows = table_rows(result.stdout)
    assert set(rows) == set(forged), result.stdout
    assert clean[0] not in rows
    for index, problem in forged.items():
        _, node, purpose, what = rows[index]
        assert problem in what, rows[index]
        assert node == ("shop" if "node 'pay'" in problem else "pay")
        assert purpose == "model-training"


def test_a_truncated_or_foreign_checkpoint_is_one_readable_line(
    coordinator: LocalNetwork, tmp_path: Path
) -> None:
    net = coordinator
    append(net, "pay", [grant("x")])
    note = tmp_path / "checkpoint.note"
    saved_checkpoint(net, 1, note)
    text = note.read_text()
    for name, content in (
        ("truncated", text[: len(text) // 2]),
        ("unsigned", text.split("\n\n")[0] + "\n"),
    ):
        bad = tmp_path / f"{name}.note"
        bad.write_text(content)
        result = audit(net, "violations", "--checkpoint", str(bad))
        assert result.returncode != 0, name
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert str(bad) in result.stderr
    missing = audit(net, "violations", "--checkpoint", str(tmp_path / "absent.note"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_a_clean_network_has_zero_violations(aligned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    note = tmp_path / "checkpoint.note"
    saved_checkpoint(network, 1, note)
    result = audit(network, "violations", "--checkpoint", str(note))
    assert result.returncode == 0, result.stderr
    match = re.search(r"no violations: (\d+) uses in (\d+) data-use entries", result.stdout)
    assert match, result.stdout
    assert int(match[1]) > 100 and int(match[2]) >= 4  # every aligned customer at every node
