"""API keys may expire

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # The old schema cannot say a key expires; rather than let a key meant to expire live forever, every
    # key with an expiry is revoked.
    op.execute("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE expires_at IS NOT NULL AND revoked_at IS NULL")
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
