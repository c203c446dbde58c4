"""Witness cosigning over real processes: every node witnesses the ledger; a split view is caught.

The split view is made the way a dishonest coordinator would: with its own signing key (the
test PKI's), a second checkpoint of the same size over a different root, shown to two of the
four witnesses first. Afterwards neither view collects three cosignatures, the witnesses that
saw the other view refuse over gRPC, and the auditor reports the fork in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import grpc
import pytest
from helpers import grant_event, make_pki

from accord.crypto.cosignature import cosignatures, verify_cosignature
from accord.crypto.keys import NoteSigner, NoteVerifier
from accord.crypto.note import Checkpoint, Note, sign_checkpoint, verify_checkpoint
from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.launcher import LocalNetwork
from accord.node import store
from accord.pki_layout import load_coordinator_signer, load_coordinator_verifier
from accord.proto.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    ledger_pb2,
    ledger_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from accord.registry import RegistryView, verify_registry
from accord.rpc.tls import CA_FILE, PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}


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


def registry(network: LocalNetwork) -> RegistryView:
    creds = PartyCredentials.load(network.pki_dir / "auditor")
    with creds.channel(network.parties["coordinator"].endpoint, "coordinator") as channel:
        signed = registry_pb2_grpc.RegistryStub(channel).GetRegistry(
            registry_pb2.GetRegistryRequest(), timeout=10
        )
    auditor = network.pki_dir / "auditor"
    return verify_registry(
        signed, load_coordinator_verifier(auditor), ca_pem=(auditor / CA_FILE).read_bytes()
    )


def witness_stub(network: LocalNetwork, name: str) -> audit_pb2_grpc.WitnessStub:
    creds = PartyCredentials.load(network.pki_dir / "auditor")
    return audit_pb2_grpc.WitnessStub(creds.channel(network.parties[name].endpoint, name))


def append_grants(network: LocalNetwork, count: int, tag: str) -> int:
    """Append ``count`` grants as pay; return the ledger's size after them."""
    creds = PartyCredentials.load(network.pki_dir / "pay")
    with creds.channel(network.parties["coordinator"].endpoint, "coordinator") as ch:
        reply = ledger_pb2_grpc.LedgerStub(ch).Append(
            ledger_pb2.AppendRequest(entries=[grant_event(i, tag=tag) for i in range(count)]),
            timeout=10,
        )
    return int(reply.appended[-1].index) + 1


def latest_note(network: LocalNetwork, size: int) -> str:
    creds = PartyCredentials.load(network.pki_dir / "pay")
    stub = ledger_pb2_grpc.LedgerStub(
        creds.channel(network.parties["coordinator"].endpoint, "coordinator")
    )
    give_up = time.monotonic() + 15
    while True:
        note: str = stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5).note
        if f"\n{size}\n" in note:
            return note
        assert time.monotonic() < give_up, note
        time.sleep(0.05)


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, int]]:
    """A coordinator and four nodes (hence four witnesses) with 20 grants on the ledger."""
    workdir = tmp_path_factory.mktemp("witness")
    pki = make_pki(workdir / "pki")
    split_by_channel(synthesize(60), "full").write(workdir / "data", consents_seed=3)
    network = LocalNetwork(workdir=workdir, pki_dir=pki)
    for channel in ROLES:
        engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
        upgrade(engine, "node")
        store.import_table(engine, read_channel_table(workdir / "data" / f"{channel}.csv"), channel)
        engine.dispose()
    network.start_coordinator()
    try:
        for channel, role in ROLES.items():
            network.start_node(channel, role)
        for channel in ROLES:  # generous: four processes importing torch on a busy machine
            network.parties[channel].wait_ready(timeout_s=240)
        yield network, append_grants(network, 20, "w")
    finally:
        codes = network.stop()
    assert codes == dict.fromkeys(codes, 0), f"unclean shutdown: {codes}"


def test_a_split_view_gets_no_quorum_and_the_auditor_reports_the_fork(
    witnessed: tuple[LocalNetwork, int], tmp_path: Path
) -> None:
    net, size = witnessed
    genuine = latest_note(net, size)
    coordinator_key = load_coordinator_verifier(net.pki_dir / "auditor")
    real = verify_checkpoint(genuine, [coordinator_key], origin=coordinator_key.name)
    # The coordinator's key signs a second, different tree of the same size.
    forged_cp = Checkpoint(
        real.origin, real.size, sha256(b"another history").digest(), real.extensions
    )
    forged = sign_checkpoint(forged_cp, [load_coordinator_signer(net.pki_dir / "coordinator")])
    (tmp_path / "forged.note").write_text(forged)
    keys = {n.channel: NoteVerifier(n.channel, n.identity_key) for n in registry(net).nodes}

    # Two witnesses are shown the forged view first, and cosign it (they know no better).
    for name in ("social", "label"):
        reply = witness_stub(net, name).AddCheckpoint(
            audit_pb2.AddCheckpointRequest(old_size=0, checkpoint=forged), timeout=10
        )
        line = Note.parse(forged + reply.cosignature).signatures[-1]
        verify_cosignature(forged_cp.to_text(), line, keys[name])

    # The genuine checkpoint: pay and shop cosign it, social and label refuse.
    honest = audit(net, "checkpoint", "--witnesses", "3", "--save", str(tmp_path / "a.note"))
    # The forged one, presented by another party: social and label cosign, pay and shop refuse.
    split = audit(
        net,
        "checkpoint",
        "--witnesses",
        "3",
        "--note",
        str(tmp_path / "forged.note"),
        "--save",
        str(tmp_path / "b.note"),
    )
    for result, cosigners in ((honest, {"pay", "shop"}), (split, {"social", "label"})):
        assert result.returncode != 0, result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("accord: error: fork:"), lines[0]
        assert "2 of the 3 cosignatures required" in lines[0]
        assert "split view" in lines[0]
        table = {
            cells[0]: cells
            for line in result.stdout.splitlines()
            if (cells := [c.strip() for c in line.split("\u2502")[1:-1]]) and cells[0] in keys
        }
        assert {n for n, c in table.items() if c[2] == "cosigned"} == cosigners, result.stdout
        assert all(
            c[2] == "fork" and "refused" in c[3] for n, c in table.items() if n not in cosigners
        ), result.stdout
    assert not (tmp_path / "a.note").exists() and not (tmp_path / "b.note").exists()

    # The witnesses themselves refuse the other view, over the wire.
    for name, other in (("pay", forged), ("social", genuine)):
        with pytest.raises(grpc.RpcError) as err:
            witness_stub(net, name).AddCheckpoint(
                audit_pb2.AddCheckpointRequest(old_size=size, checkpoint=other), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
        assert "fork" in err.value.details()  # type: ignore[attr-defined]

    # Once the log grows, the forked witnesses still refuse: no proof connects their view.
    grown_size = append_grants(net, 3, "later")
    latest_note(net, grown_size)
    grown = audit(net, "checkpoint", "--witnesses", "2", "--save", str(tmp_path / "c.note"))
    assert grown.returncode != 0
    assert f"no consistency proof connects checkpoints {size} and {grown_size}" in grown.stderr


def test_a_witness_refuses_bad_requests_and_changes_nothing(
    witnessed: tuple[LocalNetwork, int],
) -> None:
    net, _ = witnessed
    stub = witness_stub(net, "shop")
    origin = load_coordinator_verifier(net.pki_dir / "auditor").name
    before = stub.GetLatest(audit_pb2.GetLatestRequest(origin=origin), timeout=10)
    genuine = latest_note(net, before.size) if before.size else None
    impostor = sign_checkpoint(Checkpoint(origin, 99, bytes(32)), [NoteSigner.generate(origin)])
    cases = [
        (audit_pb2.AddCheckpointRequest(old_size=0, checkpoint="garbage"), "INVALID_ARGUMENT"),
        (audit_pb2.AddCheckpointRequest(old_size=0, checkpoint=impostor), "PERMISSION_DENIED"),
        (
            audit_pb2.AddCheckpointRequest(old_size=0, checkpoint="x" * 100_000),
            "INVALID_ARGUMENT",
        ),
    ]
    if genuine is not None:
        cases.append(
            (
                audit_pb2.AddCheckpointRequest(old_size=before.size + 1, checkpoint=genuine),
                "FAILED_PRECONDITION",
            )
        )
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.AddCheckpoint(request, timeout=10)
        assert err.value.code().name == code  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as err:
        stub.GetLatest(audit_pb2.GetLatestRequest(origin="elsewhere/log"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    after = stub.GetLatest(audit_pb2.GetLatestRequest(origin=origin), timeout=10)
    assert (after.size, after.note) == (before.size, before.note)


def test_an_honest_network_gets_every_cosignature(aligned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    saved = tmp_path / "cosigned.note"
    result = audit(network, "checkpoint", "--witnesses", "4", "--save", str(saved))
    assert result.returncode == 0, result.stderr
    note = saved.read_text()
    key = load_coordinator_verifier(network.pki_dir / "auditor")
    checkpoint = verify_checkpoint(
        note, [key], origin=key.name
    )  # cosignatures do not get in the way
    witnesses = [NoteVerifier(n.channel, n.identity_key) for n in registry(network).nodes]
    found = cosignatures(note, witnesses)
    assert sorted(c.witness.name for c in found) == sorted(ROLES)
    assert all(abs(c.timestamp - time.time()) < 120 for c in found)
    assert "cosigned by" in result.stdout
    assert checkpoint.size > 0
