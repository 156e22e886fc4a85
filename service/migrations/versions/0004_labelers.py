"""labelers: the stacked labeler fitted and certified at each look; a task's review budget and coverage target

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labelers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("look", sa.Integer(), nullable=False),
        sa.Column("stack", sa.JSON(), nullable=False),
        sa.Column("probe", sa.JSON(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("error_bound", sa.Float(), nullable=True),
        sa.Column("delta_spent", sa.Float(), nullable=False),
        sa.Column("fitted_on", sa.Integer(), nullable=False),
        sa.Column("certified_on", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "look"),
    )
    op.create_index("ix_labelers_task_id", "labelers", ["task_id"])
    op.add_column("tasks", sa.Column("review_budget", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("target_coverage", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("target_coverage")
        batch.drop_column("review_budget")
    op.drop_index("ix_labelers_task_id", table_name="labelers")
    op.drop_table("labelers")
