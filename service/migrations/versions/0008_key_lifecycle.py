"""api_keys: expiry, revocation, rotation with a grace period for the previous secret, last use

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("previous_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_api_keys_previous_hash", ["previous_hash"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_previous_hash")
        batch.drop_column("previous_valid_until")
        batch.drop_column("previous_hash")
        batch.drop_column("last_used_at")
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
