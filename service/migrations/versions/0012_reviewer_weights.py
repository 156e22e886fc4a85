"""review settings: a second review for answers from reviewers estimated below a level, and the probability at
which the weighted aggregate settles answers that disagree

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 20:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_settings") as batch:
        batch.add_column(sa.Column("second_review_below", sa.Float(), nullable=True))
        batch.add_column(sa.Column("aggregate_at", sa.Float(), nullable=True, server_default="0.95"))


def downgrade() -> None:
    with op.batch_alter_table("review_settings") as batch:
        batch.drop_column("aggregate_at")
        batch.drop_column("second_review_below")
