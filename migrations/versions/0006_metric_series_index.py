"""an index that holds what thinning a metric series reads

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 20:00:00.000000
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('run_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_run_metrics_series', ['run_id', 'key', 'step', 'value', 'epoch'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_run_metrics_series')
