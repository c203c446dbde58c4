"""model versions

Revision ID: 0005_models
Revises: 0004_blocks
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_models"
down_revision: str | None = "0004_blocks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_version",
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("alignment_run", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("training_run", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("nodes", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("config", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("top_state", sa.LargeBinary(), nullable=False),
        sa.Column("calibrator", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("metrics", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("report", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("consents_as_of", sa.BigInteger(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("model_id"),
    )


def downgrade() -> None:
    op.drop_table("model_version")
