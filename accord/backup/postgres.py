"""PostgreSQL through its own tools: ``pg_dump`` (custom format) and ``pg_restore``.

``pg_dump`` reads one snapshot, so a dump taken while the server writes is consistent. The
password travels in ``PGPASSWORD``, never on a command line other users can read. A restore runs
in one transaction (``--single-transaction --exit-on-error``): it lands whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from accord.backup.errors import BackupRefused
from accord.store.engine import make_engine, normalise_url

TIMEOUT_S = 3600.0


def is_postgres(url: str) -> bool:
    return normalise_url(url).startswith("postgresql")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupRefused(
            f"{name} is not on PATH: install the PostgreSQL client tools (the server's major "
            f"version or newer), or back up this database with your own {name}"
        )
    return path


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as libpq reads it, without its password, and the environment carrying it."""
    parsed = make_url(normalise_url(url))
    env = {**os.environ}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BackupRefused(f"{what} did not finish in {TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise BackupRefused(f"{what} failed: {lines[-1] if lines else 'no message'}")


def revision(url: str) -> str | None:
    """The schema revision of the database at ``url`` (None: no Accord schema there)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            if exists is None:
                return None
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        raise BackupRefused(f"cannot reach the database: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
    return None if value is None else str(value)


def dump(url: str, target: Path) -> None:
    dsn, env = _libpq(url)
    _run(
        [
            _tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={target}",
            f"--dbname={dsn}",
        ],
        env,
        "pg_dump",
    )


def restore(url: str, source: Path) -> None:
    dsn, env = _libpq(url)
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            f"--dbname={dsn}",
            str(source),
        ],
        env,
        "pg_restore",
    )


def list_dump(source: Path) -> None:
    """Refuse a file ``pg_restore`` cannot read as a custom-format dump."""
    _run([_tool("pg_restore"), "--list", str(source)], dict(os.environ), "reading the dump")
