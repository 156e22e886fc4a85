"""labelers: a labeler is fitted before its look and tested on the reviews labeled after it (its fresh slice)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("labelers", sa.Column("fitted_through", sa.Integer(), nullable=True))
    op.add_column("labelers", sa.Column("looked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("labelers", sa.Column("expected_slice", sa.Integer(), nullable=True))
    # Labelers from before fresh slices were fitted and tested at once: they have looked, and no slice of theirs
    # can be told apart, so the next look fits a new one.
    op.execute("UPDATE labelers SET looked_at = created_at")


def downgrade() -> None:
    op.execute("DELETE FROM labelers WHERE looked_at IS NULL")
    with op.batch_alter_table("labelers") as batch:
        batch.drop_column("expected_slice")
        batch.drop_column("looked_at")
        batch.drop_column("fitted_through")
