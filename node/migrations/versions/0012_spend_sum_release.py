"""the own spend group sums a channel released: one per alignment run

Revision ID: 0012_spend_sum_release
Revises: 0011_scoring_set
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_spend_sum_release"
down_revision: str | None = "0011_scoring_set"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spend_sum_release",
        sa.Column("alignment_run", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("named", sa.LargeBinary(), nullable=False),
        sa.Column("summed", sa.LargeBinary(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("fitted_on", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("alignment_run"),
    )


def downgrade() -> None:
    op.drop_table("spend_sum_release")
