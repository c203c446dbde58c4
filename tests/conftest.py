"""Fixtures shared by every test: where ../shared lives, and how its absence is handled."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import shared_path

# the networks of real processes that tests/integration and tests/adversarial share (one each)
from networks import aligned, ltv_network, trained  # noqa: F401


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI run in-process would point structlog at the test's captured stderr, which is
    closed after the test; every later log line (a gRPC interceptor's, say) would then fail."""
    monkeypatch.setattr("accord.cli.main.configure_logging", lambda *args, **kwargs: None)


@pytest.fixture
def vectors_dir() -> Path:
    return shared_path("vectors")


@pytest.fixture
def data_dir() -> Path:
    return shared_path("data")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An empty database: a SQLite file, and a fresh PostgreSQL database."""
    from helpers import fresh_postgres_database

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers import make_pki

    return make_pki(tmp_path_factory.mktemp("pki") / "pki")
