"""the one set of sources each customer is scored from under each model

Revision ID: 0011_scoring_set
Revises: 0010_ledger_watch
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011_scoring_set"
down_revision: str | None = "0010_ledger_watch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scoring_set",
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("local_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("participants", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "local_ref"),
    )


def downgrade() -> None:
    op.drop_table("scoring_set")
