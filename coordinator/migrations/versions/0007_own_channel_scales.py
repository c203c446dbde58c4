"""each LTV model's factors for its channels' own spend estimates

Revision ID: 0007_own_channel_scales
Revises: 0006_policies
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_own_channel_scales"
down_revision: str | None = "0006_policies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.add_column(
            sa.Column(
                "own_channel_scales",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="{}",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("own_channel_scales")
