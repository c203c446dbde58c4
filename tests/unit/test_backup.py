"""accord backup / restore: a consistent copy, keys only when asked, refusals that change nothing."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from helpers import fresh_postgres_database
from sqlalchemy import text

from accord.backup import archive
from accord.backup.errors import BackupRefused, NotABackup, ServerRunning
from accord.backup.party import backup, restore
from accord.cli.main import run
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.ledger.store import SqlLedgerStore
from accord.crypto.keys import NoteSigner
from accord.node.keys import load_or_create_keys
from accord.rpc.endpoint import write_endpoint
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import alembic_config, upgrade

CLOCK = lambda: 1_800_000_000.0  # noqa: E731


def node_folder(path: Path, blocks: int = 3, *, keys: bool = True, first: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(sqlite_url(path / "node.db"))
    upgrade(engine, "node")
    with engine.begin() as conn:
        for i in range(first, first + blocks):
            conn.execute(
                text("INSERT INTO network_block (local_ref, at) VALUES (:r, 1)"), {"r": f"c{i}"}
            )
    engine.dispose()
    if keys:
        load_or_create_keys(path, "pay")
    return path


def blocks(folder: Path) -> int:
    conn = sqlite3.connect(folder / "node.db")
    try:
        return int(conn.execute("SELECT COUNT(*) FROM network_block").fetchone()[0])
    finally:
        conn.close()


def members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def snapshot_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_round_trip_puts_the_database_back_and_keeps_what_it_replaced(tmp_path: Path) -> None:
    folder = node_folder(tmp_path / "pay", blocks=3)
    report = backup("node", folder, tmp_path / "b.tgz", clock=CLOCK)
    head = ScriptDirectory.from_config(alembic_config("node")).get_current_head()
    assert (report.revision, report.keys_left_out) == (head, ("identity.key", "kx.key"))
    assert members(tmp_path / "b.tgz") == ["MANIFEST.json", "database"]  # no key unless asked
    assert (tmp_path / "b.tgz").stat().st_mode & 0o077 == 0
    node_folder(folder, blocks=3, first=3)  # the folder moves on: 3 more rows
    assert blocks(folder) == 6
    done = restore(tmp_path / "b.tgz", folder, replace=True, clock=CLOCK)
    assert blocks(folder) == 3
    assert done.replaced is not None and (done.replaced / "node.db").exists()
    assert done.keys_missing == ()  # the folder's own keys stayed


def test_keys_travel_only_when_asked_and_never_overwrite_other_keys(tmp_path: Path) -> None:
    folder = node_folder(tmp_path / "pay")
    backup("node", folder, tmp_path / "k.tgz", include_keys=True, clock=CLOCK)
    assert set(members(tmp_path / "k.tgz")) == {
        "MANIFEST.json",
        "database",
        "files/identity.key",
        "files/kx.key",
    }
    fresh = tmp_path / "new-host"
    fresh.mkdir()
    done = restore(tmp_path / "k.tgz", fresh, clock=CLOCK)
    assert set(done.files) == {"identity.key", "kx.key"}
    assert (fresh / "kx.key").read_bytes() == (folder / "kx.key").read_bytes()
    assert (fresh / "kx.key").stat().st_mode & 0o077 == 0
    other = node_folder(tmp_path / "other", blocks=1)  # its own, different keys
    before = snapshot_of(other)
    with pytest.raises(BackupRefused, match="differs from the key in the backup"):
        restore(tmp_path / "k.tgz", other, replace=True, clock=CLOCK)
    assert snapshot_of(other) == before


def test_a_copy_taken_while_writers_commit_is_consistent(tmp_path: Path) -> None:
    folder = node_folder(tmp_path / "pay", blocks=0, keys=False)
    stop = threading.Event()

    def write() -> None:
        conn = sqlite3.connect(folder / "node.db", timeout=30)
        i = 0
        while not stop.is_set():
            with conn:  # two rows per transaction: a torn copy would hold an odd count
                conn.execute("INSERT INTO network_block (local_ref, at) VALUES (?, 1)", (f"a{i}",))
                conn.execute("INSERT INTO network_block (local_ref, at) VALUES (?, 1)", (f"b{i}",))
            i += 1
        conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for n in range(3):
            backup("node", folder, tmp_path / f"live{n}.tgz", clock=CLOCK)
    finally:
        stop.set()
        writer.join()
    for n in range(3):
        target = tmp_path / f"restored{n}"
        target.mkdir()
        restore(tmp_path / f"live{n}.tgz", target, clock=CLOCK)
        assert blocks(target) % 2 == 0


def test_bad_input_gets_one_line_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = node_folder(tmp_path / "pay")
    good = tmp_path / "good.tgz"
    backup("node", folder, good, clock=CLOCK)
    junk = tmp_path / "junk.tgz"
    junk.write_text("not a backup\n")
    coordinator = tmp_path / "coordinator"
    coordinator.mkdir()
    (coordinator / "coordinator.db").write_bytes(b"")
    before = snapshot_of(folder)
    cases = [
        (
            ["backup", "--role", "node", "--data-dir", str(tmp_path / "nope"), "--out", "x"],
            "no data folder",
        ),
        (
            ["backup", "--role", "auditor", "--data-dir", str(folder), "--out", "y"],
            "--role must be",
        ),
        (
            ["backup", "--role", "node", "--data-dir", str(folder), "--out", str(good)],
            "already exists",
        ),
        (
            ["restore", "--from", str(junk), "--data-dir", str(folder), "--replace"],
            "not an Accord backup",
        ),
        (["restore", "--from", str(tmp_path / "absent"), "--data-dir", str(folder)], "no file at"),
        (["restore", "--from", str(good), "--data-dir", str(tmp_path / "nope")], "no folder at"),
        (["restore", "--from", str(good), "--data-dir", str(folder)], "pass --replace"),
        (["restore", "--from", str(good), "--data-dir", str(coordinator)], "a coordinator's"),
    ]
    for argv, message in cases:
        assert run(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (argv, err)
    assert snapshot_of(folder) == before
    assert not (tmp_path / "nope").exists()
    assert [p.name for p in coordinator.iterdir()] == ["coordinator.db"]


def forged(path: Path, manifest: dict, members: dict[str, bytes]) -> Path:  # type: ignore[type-arg]
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {archive.MANIFEST: json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_damaged_or_crafted_archives_are_refused_before_anything_changes(tmp_path: Path) -> None:
    folder = node_folder(tmp_path / "pay")
    good = tmp_path / "good.tgz"
    backup("node", folder, good, clock=CLOCK)
    with tarfile.open(good) as tar:
        manifest = json.loads(tar.extractfile(archive.MANIFEST).read())  # type: ignore[union-attr]
        database = tar.extractfile(archive.DATABASE).read()  # type: ignore[union-attr]
    before = snapshot_of(folder)
    flipped = bytearray(database)
    flipped[len(flipped) // 2] ^= 1
    escape = {**manifest, "files": [{"name": "../../evil", "sha256": "0" * 64, "secret": False}]}
    newer = {**manifest, "database": {**manifest["database"], "revision": "9999_future"}}
    for name, doc, parts, error, message in [
        ("flip", manifest, {"database": bytes(flipped)}, NotABackup, "does not match its SHA-256"),
        ("escape", escape, {"database": database}, NotABackup, "never backs up"),
        ("role", {**manifest, "role": "marketer"}, {"database": database}, NotABackup, "role"),
        ("format", {**manifest, "format": "x"}, {"database": database}, NotABackup, "format"),
        ("nodb", manifest, {}, NotABackup, "no database"),
        ("newer", newer, {"database": database}, BackupRefused, "does not know"),
    ]:
        with pytest.raises(error, match=message):
            restore(forged(tmp_path / f"{name}.tgz", doc, parts), folder, replace=True, clock=CLOCK)
        assert snapshot_of(folder) == before, name


def test_restoring_under_a_running_server_is_refused(tmp_path: Path) -> None:
    folder = node_folder(tmp_path / "pay")
    backup("node", folder, tmp_path / "b.tgz", clock=CLOCK)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        write_endpoint(folder, f"127.0.0.1:{listener.getsockname()[1]}")
        before = snapshot_of(folder)
        with pytest.raises(ServerRunning, match="stop it before restoring"):
            restore(tmp_path / "b.tgz", folder, replace=True, clock=CLOCK)
        assert snapshot_of(folder) == before
    # the server is gone (its endpoint file left behind by a kill): the restore runs
    restore(tmp_path / "b.tgz", folder, replace=True, clock=CLOCK)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


def test_postgres_round_trip_through_pg_dump_rebuilds_the_tiles(
    tmp_path: Path, pg_url: str
) -> None:
    folder = tmp_path / "coordinator"
    folder.mkdir()
    (folder / "policy.toml").write_text("# the operator's policy\n")
    engine = make_engine(pg_url)
    upgrade(engine, "coordinator")
    ledger = Ledger(engine, NoteSigner.generate("accord.test/coordinator"), events=False)
    ledger.start()
    ledger.append([b"one", b"two", b"three"], appended_by="pay")
    ledger.checkpointer.publish()
    kept = ledger.checkpoint()
    report = backup("coordinator", folder, tmp_path / "pg.tgz", db_url=pg_url, clock=CLOCK)
    assert (report.database_kind, report.files, report.ledger_size) == (
        "postgresql",
        ("policy.toml",),
        3,
    )
    ledger.append([b"four"], appended_by="pay")
    ledger.stop()
    assert ledger.checkpoint().size == 4
    with pytest.raises(BackupRefused, match="PostgreSQL dump"):
        restore(tmp_path / "pg.tgz", folder, replace=True, clock=CLOCK)
    done = restore(tmp_path / "pg.tgz", folder, db_url=pg_url, replace=True, clock=CLOCK)
    assert done.ledger_size == 3
    assert SqlLedgerStore(engine).latest_checkpoint() == kept
    # the public tiles are derived from the restored database, not left from the later log
    assert (folder / "tiles" / "checkpoint").read_text() == kept.note
    engine.dispose()
