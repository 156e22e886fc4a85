"""guidelines: versioned Markdown for reviewers, and the version each answer was given under

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 21:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guidelines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "version"),
    )
    op.create_index("ix_guidelines_task_id", "guidelines", ["task_id"])
    # Every task starts at version 1: the instructions it was created with.
    op.execute(
        "INSERT INTO guidelines (task_id, version, text, author, created_at) "
        "SELECT id, 1, instructions, 'task', created_at FROM tasks"
    )
    with op.batch_alter_table("review_votes") as batch:
        batch.add_column(sa.Column("guideline_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_votes") as batch:
        batch.drop_column("guideline_version")
    op.drop_index("ix_guidelines_task_id", table_name="guidelines")
    op.drop_table("guidelines")
