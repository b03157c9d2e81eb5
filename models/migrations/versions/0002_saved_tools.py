"""Saved tools: tool trees users save under a name, and their shares.

Revision ID: 0002
Revises: 0001
Created: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.timestamps

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('savedtool',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tree', sa.JSON(), nullable=False),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner_id', 'name')
    )
    with op.batch_alter_table('savedtool', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_savedtool_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_savedtool_owner_id'), ['owner_id'], unique=False)

    op.create_table('toolshare',
    sa.Column('tool_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tool_id'], ['savedtool.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('tool_id', 'user_id')
    )


def downgrade() -> None:
    op.drop_table('toolshare')
    with op.batch_alter_table('savedtool', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_savedtool_owner_id'))
        batch_op.drop_index(batch_op.f('ix_savedtool_name'))
    op.drop_table('savedtool')
