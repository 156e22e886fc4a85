"""labelers: each candidate's look waits for a planned number of fresh reviews (a budget's last look may be smaller),
drawn only at or above its slice floor

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 23:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("labelers", sa.Column("look_size", sa.Integer(), nullable=True))
    op.add_column("labelers", sa.Column("floor", sa.Float(), nullable=False, server_default="0"))
    op.add_column("labelers", sa.Column("floor_share", sa.Float(), nullable=True))
    op.add_column("labelers", sa.Column("sure_share", sa.Float(), nullable=True))
    # A candidate waiting for its look was planned without the budget: it retires (a look that certified nothing,
    # its level counted as spent) and the next look fits a planned one.
    op.execute("UPDATE labelers SET looked_at = created_at WHERE looked_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("labelers") as batch:
        batch.drop_column("sure_share")
        batch.drop_column("floor_share")
        batch.drop_column("floor")
        batch.drop_column("look_size")
