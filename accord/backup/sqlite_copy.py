"""A consistent copy of a live SQLite database through SQLite's online backup API.

The copy is taken inside one read transaction (all pages in one step), so it is the database as
of one commit even while the server keeps writing in WAL mode; the source is opened read-write
only because a WAL reader needs the shared-memory file, and never written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from accord.backup.errors import BackupRefused, NotABackup

BUSY_TIMEOUT_S = 30.0


def snapshot(source: Path, target: Path) -> None:
    """Copy the database at ``source`` into the new file ``target``."""
    if not source.is_file():
        raise BackupRefused(f"no database at {source}")
    try:
        src = sqlite3.connect(f"file:{source}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise BackupRefused(f"cannot open {source}: {exc}") from exc
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        except sqlite3.DatabaseError as exc:
            raise BackupRefused(f"cannot read {source} as a SQLite database: {exc}") from exc
        finally:
            dst.close()
    finally:
        src.close()


def check(path: Path) -> str | None:
    """Integrity-check a database copy; return its schema revision (None: no Alembic table)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise NotABackup(f"the backup's database does not open: {exc}") from exc
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()
        if result is None or result[0] != "ok":
            raise NotABackup(f"the backup's database fails SQLite's integrity check: {result}")
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])
    except sqlite3.DatabaseError as exc:
        raise NotABackup(f"the backup's database is not a SQLite database: {exc}") from exc
    finally:
        conn.close()
