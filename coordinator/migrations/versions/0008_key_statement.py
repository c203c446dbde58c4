"""each registered node's key statement: its certificate key's signature over its keys

Rows registered before this carry an empty statement: every party leaves such an entry out of
the registry it uses until the node registers again (each node registers when it starts).

Revision ID: 0008_key_statement
Revises: 0007_own_channel_scales
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_key_statement"
down_revision: str | None = "0007_own_channel_scales"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # added empty (a blob default is written differently by each database), then made required
    with op.batch_alter_table("registered_node") as batch:
        batch.add_column(sa.Column("key_statement", sa.LargeBinary(), nullable=True))
    op.get_bind().execute(
        sa.text("UPDATE registered_node SET key_statement = :none"), {"none": b""}
    )
    with op.batch_alter_table("registered_node") as batch:
        batch.alter_column("key_statement", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("registered_node") as batch:
        batch.drop_column("key_statement")
