"""training rounds a node answered, each once

Revision ID: 0008_answered_round
Revises: 0007_own_spend_model
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008_answered_round"
down_revision: str | None = "0007_own_spend_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answered_round",
        sa.Column("round_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("round_id"),
    )
    op.create_index("ix_answered_round_run_id", "answered_round", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_answered_round_run_id", table_name="answered_round")
    op.drop_table("answered_round")
