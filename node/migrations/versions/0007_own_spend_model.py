"""a channel's own spend model per LTV model, for customers only it holds

Revision ID: 0007_own_spend_model
Revises: 0006_purchases
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_own_spend_model"
down_revision: str | None = "0006_purchases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "own_spend_model",
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("alignment_run", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("params", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("summed_customers", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_id"),
    )


def downgrade() -> None:
    op.drop_table("own_spend_model")
