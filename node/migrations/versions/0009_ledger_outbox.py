"""the node's durable outbox of ledger events and network stops

Revision ID: 0009_ledger_outbox
Revises: 0008_answered_round
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009_ledger_outbox"
down_revision: str | None = "0008_answered_round"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("record_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("consent", sa.LargeBinary(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ledger_outbox_state", "ledger_outbox", ["state"])
    op.create_index("ix_ledger_outbox_record_id", "ledger_outbox", ["record_id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_outbox_record_id", table_name="ledger_outbox")
    op.drop_index("ix_ledger_outbox_state", table_name="ledger_outbox")
    op.drop_table("ledger_outbox")
