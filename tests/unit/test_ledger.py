"""The ledger library on SQLite and PostgreSQL: durable appends, proofs, checkpoints, tiles."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from accord.coordinator.ledger.log import Ledger
from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import (
    leaf_hash,
    reference_root,
    verify_consistency,
    verify_inclusion,
)
from accord.crypto.note import Checkpoint, sign_checkpoint, verify_checkpoint
from accord.crypto.tiles import read_entries, root_from_tiles
from accord.errors import InvalidInput, NotReady
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

SIGNER = NoteSigner.generate("accord.test/coordinator")


def open_ledger(db_url: str, tiles: Path | None = None) -> Ledger:
    engine = make_engine(db_url)
    upgrade(engine, "coordinator")
    ledger = Ledger(engine, SIGNER, tiles_dir=tiles, checkpoint_interval_s=0.05, events=False)
    ledger.start()
    return ledger


def signed(ledger: Ledger) -> Checkpoint:
    note = ledger.checkpointer.publish().note
    return verify_checkpoint(note, [SIGNER.verifier], origin=SIGNER.name)


def test_appends_prove_against_signed_checkpoints(db_url: str, tmp_path: Path) -> None:
    ledger = open_ledger(db_url, tmp_path / "tiles")
    entries = [f"entry-{i}".encode() for i in range(300)]
    appended = []
    for start in range(0, 300, 70):
        appended += ledger.append(entries[start : start + 70], appended_by="pay")
    assert [a.index for a in appended] == list(range(300))
    assert [a.leaf_hash for a in appended] == [leaf_hash(e) for e in entries]
    cp = signed(ledger)
    assert cp.size == 300
    assert cp.root_hash == reference_root([leaf_hash(e) for e in entries])
    for index in (0, 1, 150, 255, 256, 299):
        size, leaf, proof = ledger.inclusion_proof(index, 300)
        verify_inclusion(leaf, index, size, proof, cp.root_hash)
    old_root = reference_root([leaf_hash(e) for e in entries[:123]])
    size2, proof = ledger.consistency_proof(123, 300)
    verify_consistency(123, size2, old_root, cp.root_hash, proof)
    # the tiles written beside the database reproduce the checkpoint: a generic tlog reader
    # needs nothing else
    read = lambda path: (tmp_path / "tiles" / path).read_bytes()  # noqa: E731
    assert (tmp_path / "tiles" / "checkpoint").read_text() == ledger.checkpoint().note
    assert root_from_tiles(read, 300) == cp.root_hash
    assert read_entries(read, 300) == entries
    ledger.stop()


def test_concurrent_writers_are_group_committed(db_url: str) -> None:
    ledger = open_ledger(db_url)
    results: list[int] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        for i in range(40):
            (a,) = ledger.append([f"w{w}-{i}".encode()], appended_by="pay")
            with lock:
                results.append(a.index)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(320))
    data = [e.data for e in ledger.entries(0, 320)]
    assert signed(ledger).root_hash == reference_root([leaf_hash(d) for d in data])
    ledger.stop()


def test_a_restart_resumes_the_same_tree(db_url: str) -> None:
    ledger = open_ledger(db_url)
    ledger.append([b"a", b"b", b"c"], appended_by="pay")
    first = signed(ledger)
    ledger.stop()
    again = open_ledger(db_url)
    assert again.checkpoint().size == 3
    again.append([b"d"], appended_by="pay")
    second = signed(again)
    _, proof = again.consistency_proof(3, 4)
    verify_consistency(3, 4, first.root_hash, second.root_hash, proof)
    again.stop()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lg: lg.append([], appended_by="x"), "between 1 and 1000"),
        (lambda lg: lg.append([b""], appended_by="x"), "entries\\[0\\] is 0 bytes"),
        (lambda lg: lg.append([b"x" * 70_000], appended_by="x"), "1 to 65535"),
        (lambda lg: lg.append([b"x"] * 1001, appended_by="x"), "between 1 and 1000"),
        (lambda lg: lg.inclusion_proof(5, 3), "index 5 is not in a tree of size 3"),
        (lambda lg: lg.inclusion_proof(0, 99), "beyond the log's size"),
        (lambda lg: lg.consistency_proof(0, 2), "0 < size1 <= size2"),
        (lambda lg: lg.consistency_proof(3, 2), "0 < size1 <= size2"),
        (lambda lg: lg.entries(0, 0), "between 1 and 1000"),
        (lambda lg: lg.entries(10, 1), "beyond the log's size"),
        (lambda lg: lg.prove_extends("garbage"), "old_checkpoint"),
    ],
)
def test_bad_requests_are_invalid_and_change_nothing(tmp_path: Path, call, message: str) -> None:  # type: ignore[no-untyped-def]
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.append([b"a", b"b", b"c"], appended_by="pay")
    before = signed(ledger)
    with pytest.raises(InvalidInput, match=message):
        call(ledger)
    assert signed(ledger) == before
    ledger.stop()


def test_prove_extends_refuses_foreign_and_rewritten_checkpoints(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.append([b"a", b"b", b"c", b"d"], appended_by="pay")
    cp = signed(ledger)
    other_log = NoteSigner.generate("evil.example/log")
    foreign = sign_checkpoint(Checkpoint("evil.example/log", 2, cp.root_hash), [other_log])
    with pytest.raises(InvalidInput, match="old_checkpoint"):
        ledger.prove_extends(foreign)
    # our key, but a root this log never had at size 2 (as if history had been rewritten)
    forged = sign_checkpoint(Checkpoint(SIGNER.name, 2, bytes(32)), [SIGNER])
    with pytest.raises(NotReady, match="rewritten"):
        ledger.prove_extends(forged)
    too_big = sign_checkpoint(Checkpoint(SIGNER.name, 9, cp.root_hash), [SIGNER])
    with pytest.raises(InvalidInput, match="beyond the latest"):
        ledger.prove_extends(too_big)
    genuine = ledger.prove_extends(ledger.checkpoint().note)
    assert genuine.proof == []
    assert genuine.checkpoint.size == 4
    ledger.stop()
