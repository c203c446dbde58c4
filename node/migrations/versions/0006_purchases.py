"""purchase logs and the cut-off their derived features use

Revision ID: 0006_purchases
Revises: 0005_training
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_purchases"
down_revision: str | None = "0005_training"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "purchase",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("local_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_purchase_local_ref"), "purchase", ["local_ref"], unique=False)
    op.create_table(
        "purchase_window",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of_day", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("purchase_window")
    op.drop_index(op.f("ix_purchase_local_ref"), table_name="purchase")
    op.drop_table("purchase")
