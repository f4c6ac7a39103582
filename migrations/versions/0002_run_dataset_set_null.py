"""training runs keep their history when their dataset is deleted

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:24:05.210276
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.alter_column('dataset_id', existing_type=sa.VARCHAR(length=32), nullable=True)
        batch_op.drop_constraint(batch_op.f('fk_training_runs_dataset_id_datasets'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_training_runs_dataset_id_datasets'), 'datasets', ['dataset_id'],
                                    ['id'], ondelete='SET NULL')


def downgrade() -> None:
    # The old schema cannot hold a run without its dataset: those runs go (their metrics cascade).
    op.execute("DELETE FROM training_runs WHERE dataset_id IS NULL")
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_training_runs_dataset_id_datasets'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_training_runs_dataset_id_datasets'), 'datasets', ['dataset_id'],
                                    ['id'], ondelete='RESTRICT')
        batch_op.alter_column('dataset_id', existing_type=sa.VARCHAR(length=32), nullable=False)
