"""task kind: what one item's label is (single_label for every task so far)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("kind", sa.String(length=20), nullable=False, server_default="single_label"))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("kind")
