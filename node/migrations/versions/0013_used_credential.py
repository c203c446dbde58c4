"""the scoring presentations a node accepted, kept across restarts until they expire

Revision ID: 0013_used_credential
Revises: 0012_spend_sum_release
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013_used_credential"
down_revision: str | None = "0012_spend_sum_release"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "used_credential",
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("phase", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", "phase"),
    )
    op.create_index("ix_used_credential_expires_at", "used_credential", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_credential_expires_at", table_name="used_credential")
    op.drop_table("used_credential")
