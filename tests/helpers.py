"""Helpers shared by tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from accord.pki_layout import init_pki

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ACCORD_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skip the test when it is absent, fail when running in CI.

    Data and conformance vectors are read from ../shared, never copied into the project.
    """
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"{path} is absent (the shared data and vectors live beside the checkout)"
        if in_ci():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return path


PG_ADMIN_URL = os.environ.get("ACCORD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PARTIES = ["coordinator", "pay", "shop", "social", "label", "auditor", "marketer"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def postgres_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except OperationalError:
        return False


def require_postgres() -> None:
    """Skip when PostgreSQL is unreachable, except in CI, where that is a failure."""
    if postgres_available():
        return
    reason = f"PostgreSQL is not reachable at {PG_ADMIN_URL}"
    if in_ci():
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards; yield its URL."""
    require_postgres()
    name = f"accord_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def make_pki(
    directory: Path, parties: list[str] | None = None, network: str = "accord.test"
) -> Path:
    init_pki(
        directory, parties or PARTIES, network=network, force=False, now=dt.datetime.now(dt.UTC)
    )
    return directory


def grant_event(i: int, node: str = "pay", tag: str = "") -> bytes:
    """A well-formed consent.granted ledger event with commitments derived from ``i``."""
    from hashlib import sha256

    from accord.consent.events import ConsentGranted, encode

    return encode(
        ConsentGranted(
            node,
            sha256(f"subject-{tag}{i}".encode()).digest(),
            sha256(f"consent-{tag}{i}".encode()).digest(),
            ("model-training",),
            2_000_000_000,
            1_700_000_000 + i,
        )
    )
