"""What a backup of a node or a coordinator holds, and how a restore puts it back.

- node: ``node.db`` (or ``--db``); with ``--include-keys`` also ``identity.key``, ``kx.key``,
  the SuperNode key pair and the consent issuer's key.
- coordinator: ``coordinator.db`` (or ``--db``) and ``policy.toml``; it keeps no keys in its
  data folder (they live in its PKI folder).

The PKI folder (TLS key and certificate, the coordinator's ``signer.key``) is never read: keep
it apart, offline. A restore refuses to run while a party serves from the folder, checks the
whole archive before it changes anything, and moves what it replaces into
``<data dir>/replaced-<UTC time>/`` instead of deleting it. The coordinator's tlog tiles are
derived data: a restore rebuilds them from the restored database.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from accord.backup import archive, postgres, sqlite_copy
from accord.backup.errors import BackupRefused, NotABackup, ServerRunning
from accord.clock import Clock, system_clock
from accord.node.keys import IDENTITY_FILE, ISSUER_FILE, KX_FILE
from accord.rpc.endpoint import ENDPOINT_FILE
from accord.store.engine import make_engine, normalise_url, sqlite_url
from accord.store.migrate import Role, alembic_config

ROLES: tuple[Role, ...] = ("node", "coordinator")
DB_FILE = {"node": "node.db", "coordinator": "coordinator.db"}
TILES_DIR = "tiles"
SUPERNODE_KEY = "flower-supernode.key"  # accord.coordinator.deployment.AUTH_KEY_FILE
PLAIN_FILES: dict[str, tuple[str, ...]] = {"node": (), "coordinator": ("policy.toml",)}
KEY_FILES: dict[str, tuple[str, ...]] = {
    # the consent issuer's key: without it, customers' credentials need renewing after a restore
    "node": (IDENTITY_FILE, KX_FILE, SUPERNODE_KEY, f"{SUPERNODE_KEY}.pub", ISSUER_FILE),
    "coordinator": (),
}
ALLOWED: dict[str, frozenset[str]] = {
    role: frozenset(PLAIN_FILES[role] + KEY_FILES[role]) for role in ROLES
}


@dataclass(frozen=True)
class BackupReport:
    role: str
    out: Path
    database_kind: str
    revision: str
    files: tuple[str, ...]
    keys_left_out: tuple[str, ...]
    ledger_size: int | None


@dataclass(frozen=True)
class RestoreReport:
    role: str
    database_kind: str
    revision: str
    created_at: int
    files: tuple[str, ...]
    replaced: Path | None
    ledger_size: int | None
    keys_missing: tuple[str, ...] = field(default=())


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise BackupRefused(f"--role must be 'node' or 'coordinator', not {role!r}")
    return role


def serving_endpoint(data_dir: Path) -> str | None:
    """host:port of a party serving from ``data_dir`` right now (None: nobody answers)."""
    path = data_dir / ENDPOINT_FILE
    try:
        endpoint = path.read_text().strip()
    except OSError:
        return None
    host, _, port = endpoint.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
    except (OSError, ValueError):
        return None  # left behind by a process that was killed
    return endpoint


def _database(role: str, data_dir: Path, db_url: str | None) -> str:
    return normalise_url(db_url or sqlite_url(data_dir / DB_FILE[role]))


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupRefused("an in-memory database has nothing to back up or restore")
    return Path(database)


def _ledger_size(url: str) -> int | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT MAX(size) FROM ledger_checkpoint")).scalar()
    except Exception:  # an empty or partial schema: the size is only informative
        return None
    finally:
        engine.dispose()
    return None if value is None else int(value)


def backup(
    role: str,
    data_dir: Path,
    out: Path,
    *,
    db_url: str | None = None,
    include_keys: bool = False,
    clock: Clock = system_clock,
) -> BackupReport:
    """Write a backup of the party whose state is in ``data_dir`` to the new file ``out``."""
    role = check_role(role)
    if not data_dir.is_dir():
        raise BackupRefused(f"no data folder at {data_dir}")
    if include_keys and not KEY_FILES[role]:
        raise BackupRefused(
            "--include-keys: the coordinator keeps no keys in its data folder; its signer.key "
            "and tls.key are in its PKI folder, which accord backup never reads: copy that "
            "folder to offline storage yourself"
        )
    if not out.parent.is_dir():
        raise BackupRefused(f"the folder {out.parent} does not exist")
    if out.exists():
        raise BackupRefused(f"{out} already exists; choose a new file name")
    url = _database(role, data_dir, db_url)
    with tempfile.TemporaryDirectory(prefix=".accord-backup-", dir=out.parent) as tmp:
        staging = Path(tmp)
        copy = staging / archive.DATABASE
        if postgres.is_postgres(url):
            kind, revision = "postgresql", postgres.revision(url)
            if revision is not None:
                postgres.dump(url, copy)
            ledger_size = _ledger_size(url) if role == "coordinator" else None
        else:
            kind = "sqlite"
            sqlite_copy.snapshot(_sqlite_path(url), copy)
            revision = sqlite_copy.check(copy)
            ledger_size = _ledger_size(sqlite_url(copy)) if role == "coordinator" else None
        if revision is None:
            raise BackupRefused(f"the database of {data_dir} holds no Accord {role} schema")
        wanted = PLAIN_FILES[role] + (KEY_FILES[role] if include_keys else ())
        files = {name: data_dir / name for name in wanted if (data_dir / name).is_file()}
        manifest = archive.Manifest(
            role=role,
            created_at=int(clock()),
            database_kind=kind,
            database_sha256=archive.digest(copy),
            revision=revision,
            files=tuple(
                archive.Member(name, archive.digest(path), name in KEY_FILES[role])
                for name, path in files.items()
            ),
            ledger_size=ledger_size,
        )
        archive.write(out, manifest, copy, files)
    left_out = tuple(
        name for name in KEY_FILES[role] if name not in files and (data_dir / name).is_file()
    )
    return BackupReport(role, out, kind, revision, tuple(files), left_out, ledger_size)


def _known_revision(role: Role, revision: str | None) -> str:
    if revision is None:
        raise NotABackup("the backup's database holds no Accord schema")
    script = ScriptDirectory.from_config(alembic_config(role))
    if revision not in {s.revision for s in script.walk_revisions()}:
        raise BackupRefused(
            f"the backup's {role} schema is at revision {revision!r}, which this Accord does "
            "not know: restore it with the Accord version that made it"
        )
    return revision


def restore(
    source: Path,
    data_dir: Path,
    *,
    db_url: str | None = None,
    replace: bool = False,
    clock: Clock = system_clock,
) -> RestoreReport:
    """Put the backup ``source`` back into ``data_dir`` (and ``db_url``); all or nothing."""
    if not data_dir.is_dir():
        raise BackupRefused(f"no folder at {data_dir}; create it (mode 0700) and run again")
    running = serving_endpoint(data_dir)
    if running is not None:
        raise ServerRunning(
            f"a party is serving from {data_dir} at {running}; stop it before restoring"
        )
    with tempfile.TemporaryDirectory(prefix=".accord-restore-", dir=data_dir) as tmp:
        staging = Path(tmp)
        manifest = archive.read(source, staging, ALLOWED)
        role = check_role(manifest.role)
        revision = _known_revision(role, manifest.revision)
        other = next(r for r in ROLES if r != role)
        if (data_dir / DB_FILE[other]).exists():
            raise BackupRefused(
                f"{data_dir} holds a {other}'s database and this is a backup of a {role}; "
                "restore it into that party's own folder"
            )
        url = _database(role, data_dir, db_url)
        target_pg = postgres.is_postgres(url)
        copy = staging / archive.DATABASE
        if manifest.database_kind == "postgresql" and not target_pg:
            raise BackupRefused(
                "this backup holds a PostgreSQL dump: give --db postgresql://... to restore it into"
            )
        if manifest.database_kind == "sqlite" and target_pg:
            raise BackupRefused(
                "this backup holds a SQLite database: restore it without --db (or with a "
                "sqlite:/// URL)"
            )
        if target_pg:
            postgres.list_dump(copy)
            holds_data = postgres.revision(url) is not None
        else:
            if sqlite_copy.check(copy) != revision:
                raise NotABackup(f"{source}: the database's revision differs from the manifest's")
            db_path = _sqlite_path(url)
            holds_data = db_path.exists() and db_path.stat().st_size > 0
        restored = staging / "files"
        _check_keys(manifest, restored, data_dir)
        plain = [m.name for m in manifest.files if not m.secret]
        if not replace and (holds_data or any((data_dir / n).exists() for n in plain)):
            raise BackupRefused(
                f"{data_dir} already holds a {role}'s data; pass --replace to restore over it "
                "(what is replaced is moved to a replaced-<time> folder beside it)"
            )
        stamp = dt.datetime.fromtimestamp(clock(), dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = data_dir / f"replaced-{stamp}"
        moved = _Aside(aside)
        # -- from here on the folder changes; everything above only read
        if target_pg:
            postgres.restore(url, copy)
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                moved.take(db_path.with_name(db_path.name + suffix))
            db_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(copy, db_path)
        written = []
        for member in manifest.files:
            target = data_dir / member.name
            if member.secret and target.exists():
                continue  # the same key (checked above)
            moved.take(target)
            shutil.move(restored / member.name, target)
            os.chmod(target, 0o600)
            written.append(member.name)
        if role == "coordinator":
            moved.take(data_dir / TILES_DIR)
            rebuild_tiles(url, data_dir / TILES_DIR)
    missing = tuple(n for n in KEY_FILES[role][:2] if not (data_dir / n).exists())
    return RestoreReport(
        role,
        manifest.database_kind,
        revision,
        manifest.created_at,
        tuple(written),
        moved.folder if moved.used else None,
        manifest.ledger_size,
        missing,
    )


def _check_keys(manifest: archive.Manifest, restored: Path, data_dir: Path) -> None:
    for member in manifest.files:
        target = data_dir / member.name
        same = not target.exists() or target.read_bytes() == (restored / member.name).read_bytes()
        if member.secret and not same:
            raise BackupRefused(
                f"{target} differs from the key in the backup: this folder belongs to another "
                "key; move the folder's keys away first if the backup's are wanted"
            )


class _Aside:
    """Moves files a restore replaces into one folder (made on first use, mode 0700)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.used = False

    def take(self, path: Path) -> None:
        if not path.exists():
            return
        if not self.used:
            self.folder.mkdir(mode=0o700)
            self.used = True
        shutil.move(path, self.folder / path.name)


def rebuild_tiles(url: str, tiles: Path) -> None:
    """Write the C2SP tlog tiles and checkpoint of the ledger in the database at ``url``."""
    from accord.coordinator.ledger.store import SqlLedgerStore
    from accord.coordinator.ledger.tile_writer import TileWriter

    engine = make_engine(url)
    try:
        store = SqlLedgerStore(engine)
        latest = store.latest_checkpoint()
        if latest is None:
            return
        writer = TileWriter(tiles, store)
        writer.write(latest.size, since=0)
        writer.write_checkpoint(latest.note)
    finally:
        engine.dispose()
