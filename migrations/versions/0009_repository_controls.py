"""V2 repository load/unload kept in the database, so every API process follows it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('repository_controls',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('unloaded', sa.Boolean(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'],
                            name=op.f('fk_repository_controls_model_id_registered_models'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'],
                            name=op.f('fk_repository_controls_version_id_model_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_repository_controls'))
    )
    with op.batch_alter_table('repository_controls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_repository_controls_version_id'), ['version_id'], unique=False)


def downgrade() -> None:
    # Without the table each process again keeps its own load/unload state, as before.
    with op.batch_alter_table('repository_controls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repository_controls_version_id'))
    op.drop_table('repository_controls')
