"""labels by task and source: the human labels of a task (certification, the dashboard) and every label's source
(final sources) are read from the index alone instead of one table row per label

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 01:30:00.000000
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_labels_task_source", "labels", ["task_id", "source", "item_id"])


def downgrade() -> None:
    op.drop_index("ix_labels_task_source", table_name="labels")
