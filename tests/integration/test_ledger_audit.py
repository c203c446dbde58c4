"""The ledger over real processes: an auditor catches a rewrite; bad input changes nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from helpers import grant_event, make_pki
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import CompactRange, leaf_hash
from accord.crypto.note import Checkpoint, sign_checkpoint
from accord.crypto.tiles import read_entries, root_from_tiles
from accord.launcher import LocalNetwork
from accord.pki_layout import load_coordinator_verifier
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine

# The coordinator's own first entry: the decision policy it took into use.
BASE = 1


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[LocalNetwork]:
    network = LocalNetwork(workdir=tmp_path, pki_dir=make_pki(tmp_path / "pki"))
    network.start_coordinator()
    wait_checkpoint(network, 0)
    yield network
    network.stop()


def stub(network: LocalNetwork, party: str = "pay") -> ledger_pb2_grpc.LedgerStub:
    creds = PartyCredentials.load(network.pki_dir / party)
    return ledger_pb2_grpc.LedgerStub(
        creds.channel(network.parties["coordinator"].endpoint, "coordinator")
    )


def append(network: LocalNetwork, entries: list[bytes]) -> None:
    stub(network).Append(ledger_pb2.AppendRequest(entries=entries), timeout=10)


def wait_checkpoint(network: LocalNetwork, appended: int) -> str:
    """Wait for the checkpoint covering the coordinator's own entries and ``appended`` more."""
    import time

    give_up = time.monotonic() + 10
    while True:
        note = stub(network).GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5).note
        if f"\n{BASE + appended}\n" in note:
            return note
        assert time.monotonic() < give_up, note
        time.sleep(0.05)


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
        timeout=60,
    )


def restart(network: LocalNetwork) -> None:
    assert network.parties["coordinator"].terminate() == 0
    network.start_coordinator()


def test_auditor_detects_a_rewritten_entry(coordinator: LocalNetwork, tmp_path: Path) -> None:
    net = coordinator
    append(net, [grant_event(i) for i in range(50)])
    wait_checkpoint(net, 50)
    saved = audit(net, "checkpoint", "--save", str(tmp_path / "old.note"))
    assert saved.returncode == 0, saved.stderr
    append(net, [grant_event(i, tag="u") for i in range(30)])
    wait_checkpoint(net, 80)
    honest = audit(net, "verify", "--old", str(tmp_path / "old.note"))
    assert honest.returncode == 0, honest.stderr
    assert f"checkpoint {BASE + 80} extends your checkpoint {BASE + 50}" in honest.stdout

    net.parties["coordinator"].terminate()
    engine = make_engine(f"sqlite:///{net.workdir / 'coordinator' / 'coordinator.db'}")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE ledger_entry SET data = :d WHERE idx = 17"),
            {"d": grant_event(999, tag="forged")},
        )
    engine.dispose()
    net.start_coordinator()
    caught = audit(net, "verify", "--old", str(tmp_path / "old.note"))
    assert caught.returncode != 0
    lines = caught.stderr.strip().splitlines()
    assert len(lines) == 1, caught.stderr
    assert "entry 17" in lines[0]
    assert "rewritten" in lines[0]


def test_auditor_detects_a_rewritten_history(coordinator: LocalNetwork, tmp_path: Path) -> None:
    """Rewriting an entry and recomputing every hash cannot extend an old checkpoint."""
    net = coordinator
    append(net, [grant_event(i) for i in range(40)])
    wait_checkpoint(net, 40)
    assert audit(net, "checkpoint", "--save", str(tmp_path / "old.note")).returncode == 0
    net.parties["coordinator"].terminate()
    engine = make_engine(f"sqlite:///{net.workdir / 'coordinator' / 'coordinator.db'}")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE ledger_entry SET data = :d, leaf_hash = :h WHERE idx = 5"),
            {"d": b"rewritten", "h": leaf_hash(b"rewritten")},
        )
        rows = conn.execute(text("SELECT data FROM ledger_entry ORDER BY idx")).all()
        conn.execute(text("DELETE FROM ledger_node"))
        conn.execute(text("DELETE FROM ledger_checkpoint"))
        compact = CompactRange()
        for (data,) in rows:
            for node, digest in compact.append(leaf_hash(bytes(data))):
                conn.execute(
                    text("INSERT INTO ledger_node (level, idx, hash) VALUES (:l, :i, :h)"),
                    {"l": node.level, "i": node.index, "h": digest},
                )
    engine.dispose()
    net.start_coordinator()
    append(net, [grant_event(0, tag="after")])
    wait_checkpoint(net, 41)
    caught = audit(net, "verify", "--old", str(tmp_path / "old.note"))
    assert caught.returncode != 0
    assert "differs from your checkpoint" in caught.stderr or "not consistent" in caught.stderr


def test_tiles_on_disk_match_the_signed_checkpoint(coordinator: LocalNetwork) -> None:
    net = coordinator
    entries = [grant_event(i) for i in range(600)]
    for start in range(0, 600, 200):
        append(net, entries[start : start + 200])
    wait_checkpoint(net, 600)
    restart(net)  # stop() flushes a final checkpoint and its tiles
    tiles = net.workdir / "coordinator" / "tiles"
    from accord.audit import check_note

    cp = check_note(
        (tiles / "checkpoint").read_text(),
        load_coordinator_verifier(net.pki_dir / "auditor"),
        what="tiles",
    )
    read = lambda path: (tiles / path).read_bytes()  # noqa: E731
    assert cp.size == BASE + 600
    assert root_from_tiles(read, cp.size) == cp.root_hash
    assert read_entries(read, cp.size)[BASE:] == entries


def test_exported_proofs_verify_offline(coordinator: LocalNetwork, tmp_path: Path) -> None:
    net = coordinator
    append(net, [grant_event(i) for i in range(20)])
    wait_checkpoint(net, 20)
    assert audit(net, "checkpoint", "--save", str(tmp_path / "old.note")).returncode == 0
    append(net, [grant_event(1, tag="x"), grant_event(2, tag="x")])
    wait_checkpoint(net, 22)
    out = tmp_path / "export"
    result = audit(
        net, "export", "--out", str(out), "--old", str(tmp_path / "old.note"), "--count", "5"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "inclusion").iterdir()) == [f"{i}.json" for i in range(5)]
    import json

    proof = json.loads((out / "inclusion" / "3.json").read_text())
    assert set(proof) == {"leafIdx", "treeSize", "root", "leafHash", "proof"}
    consistency = json.loads((out / "consistency" / f"{BASE + 20}-{BASE + 22}.json").read_text())
    assert set(consistency) == {"size1", "size2", "root1", "root2", "proof"}
    pki = str(net.pki_dir / "auditor")
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "audit",
            "verify-proof",
            "--file",
            str(out / "inclusion" / "3.json"),
            "--checkpoint",
            str(out / "checkpoint"),
            "--pki",
            pki,
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    proof["proof"][0] = proof["proof"][0][:-4] + "AAA="
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "audit",
            "verify-proof",
            "--file",
            str(tmp_path / "bad.json"),
            "--checkpoint",
            str(out / "checkpoint"),
            "--pki",
            pki,
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1


SIGNER = NoteSigner.generate("accord.test/coordinator")
OK_OR_INVALID = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call()
    except grpc.RpcError as err:
        return err.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


u64 = st.one_of(st.integers(0, 50), st.integers(0, 2**64 - 1))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    index=u64,
    size=u64,
    size1=u64,
    start=u64,
    count=st.integers(0, 2**32 - 1),
    note=st.one_of(
        st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
    ),
    cut=st.integers(0, 200),
)
def test_hostile_reads_are_invalid_argument_and_change_nothing(
    coordinator: LocalNetwork,
    index: int,
    size: int,
    size1: int,
    start: int,
    count: int,
    note: str,
    cut: int,
) -> None:
    net = coordinator
    s = stub(net, "auditor")  # reads of whole entries are the auditor's (roles table)
    if not getattr(coordinator, "_seeded", False):
        append(net, [grant_event(i) for i in range(30)])
        wait_checkpoint(net, 30)
        coordinator._seeded = True  # type: ignore[attr-defined]
    before = s.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5).note
    genuine = before
    foreign = sign_checkpoint(Checkpoint(SIGNER.name, 3, bytes(32)), [SIGNER])  # unknown key
    calls = [
        lambda: s.GetInclusionProof(
            ledger_pb2.GetInclusionProofRequest(index=index, tree_size=size), timeout=5
        ),
        lambda: s.GetConsistencyProof(
            ledger_pb2.GetConsistencyProofRequest(size1=size1, size2=size), timeout=5
        ),
        lambda: s.GetEntries(ledger_pb2.GetEntriesRequest(start=start, count=count), timeout=5),
        lambda: s.ProveExtends(ledger_pb2.ProveExtendsRequest(old_checkpoint=note), timeout=5),
        lambda: s.ProveExtends(
            ledger_pb2.ProveExtendsRequest(old_checkpoint=genuine[:cut]), timeout=5
        ),
        lambda: s.ProveExtends(ledger_pb2.ProveExtendsRequest(old_checkpoint=foreign), timeout=5),
    ]
    for call in calls:
        assert _code(call) in OK_OR_INVALID
    assert _code(calls[3]) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(calls[5]) == grpc.StatusCode.INVALID_ARGUMENT
    assert s.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5).note == before


def test_oversized_and_empty_appends_are_invalid_argument(coordinator: LocalNetwork) -> None:
    s = stub(coordinator)
    before = s.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5).note
    for entries in ([], [b""], [b"x" * 70_000], [b"x" * 4000] * 1200, [b"y" * 65_000] * 80):
        with pytest.raises(grpc.RpcError) as err:
            s.Append(ledger_pb2.AppendRequest(entries=entries), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert s.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5).note == before
