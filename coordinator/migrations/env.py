"""Alembic environment for the coordinator's schema.

Run programmatically by :func:`accord.store.migrate.upgrade` (which passes a connection), or by
hand: ``alembic -n coordinator -x db=URL upgrade head``.
"""

from __future__ import annotations

from alembic import context

from accord.coordinator.models import CoordinatorTable
from accord.store.engine import make_engine

target_metadata = CoordinatorTable.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("db") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database URL: alembic -n coordinator -x db=URL upgrade head")
    engine = make_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; give a database URL")
run_migrations()
