"""projects: a task belongs to a project; a client key may be scoped to one, and then sees only its tasks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("project", sa.String(100), nullable=False, server_default="default"))
        batch.create_index("ix_tasks_project", ["project"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("project", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("project")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_project")
        batch.drop_column("project")
