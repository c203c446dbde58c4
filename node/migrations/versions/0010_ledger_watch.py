"""the node's verified view of the coordinator's ledger and its rollback/fork alarms

Revision ID: 0010_ledger_watch
Revises: 0009_ledger_outbox
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_ledger_watch"
down_revision: str | None = "0009_ledger_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_view",
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("verified_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("origin"),
    )
    op.create_table(
        "ledger_alarm",
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("held_size", sa.BigInteger(), nullable=False),
        sa.Column("held_note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("served_size", sa.BigInteger(), nullable=False),
        sa.Column("served_note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("detected_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "source"),
    )


def downgrade() -> None:
    op.drop_table("ledger_alarm")
    op.drop_table("ledger_view")
