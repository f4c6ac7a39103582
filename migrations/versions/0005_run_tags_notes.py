"""tags and notes on runs, and the indexes and JSONB of the runs table's sorts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SORTED_JSON = ('progress', 'latest_metrics')

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('run_tags',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['training_runs.id'], name=op.f('fk_run_tags_run_id_training_runs'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'tag', name=op.f('pk_run_tags'))
    )
    with op.batch_alter_table('run_tags', schema=None) as batch_op:
        batch_op.create_index('ix_run_tags_tag_run_id', ['tag', 'run_id'], unique=False)
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
        batch_op.create_index('ix_training_runs_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_training_runs_started_at_id', ['started_at', 'id'], unique=False)
        batch_op.create_index('ix_training_runs_finished_at_id', ['finished_at', 'id'], unique=False)
        batch_op.create_index('ix_training_runs_task_created_at', ['task', 'created_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':  # SQLite keeps JSON as text either way
        for column in SORTED_JSON:
            op.alter_column('training_runs', column, type_=postgresql.JSONB(), existing_type=sa.JSON(),
                            existing_nullable=False, postgresql_using=f'{column}::jsonb')


def downgrade() -> None:
    # Tags and notes are lost: the old schema has nowhere to keep them.
    if op.get_bind().dialect.name == 'postgresql':
        for column in SORTED_JSON:
            op.alter_column('training_runs', column, type_=sa.JSON(), existing_type=postgresql.JSONB(),
                            existing_nullable=False, postgresql_using=f'{column}::json')
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_training_runs_task_created_at')
        batch_op.drop_index('ix_training_runs_finished_at_id')
        batch_op.drop_index('ix_training_runs_started_at_id')
        batch_op.drop_index('ix_training_runs_created_at_id')
        batch_op.drop_column('note')
    op.drop_table('run_tags')
