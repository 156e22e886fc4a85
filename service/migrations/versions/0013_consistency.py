"""consistency: near-identical items with different final labels, and how far checks have read

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inconsistent_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("first_item_id", sa.Integer(), nullable=False),
        sa.Column("second_item_id", sa.Integer(), nullable=False),
        sa.Column("cosine", sa.Float(), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.ForeignKeyConstraint(["first_item_id"], ["items.id"]),
        sa.ForeignKeyConstraint(["second_item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "first_item_id", "second_item_id"),
    )
    op.create_index("ix_inconsistent_pairs_task_id", "inconsistent_pairs", ["task_id"])
    op.create_table(
        "consistency_checks",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("checked_through", sa.Integer(), nullable=False),
        sa.Column("min_cosine", sa.Float(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("task_id"),
    )


def downgrade() -> None:
    op.drop_table("consistency_checks")
    op.drop_index("ix_inconsistent_pairs_task_id", table_name="inconsistent_pairs")
    op.drop_table("inconsistent_pairs")
