"""Exports get a priority (interactive or bulk): the queue starts interactive exports ahead of bulk ones
(those made before it are bulk); and `runner`, the process of this machine running an export in embedded mode.

Revision ID: 0004
Revises: 0003
Created: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

priority = sa.Enum('interactive', 'bulk', name='priority')


def upgrade() -> None:
    priority.create(op.get_bind(), checkfirst=True)  # PostgreSQL's enum type; nothing on SQLite
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', priority, nullable=False, server_default='bulk'))
        batch_op.add_column(sa.Column('runner', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.drop_column('runner')
        batch_op.drop_column('priority')
    priority.drop(op.get_bind(), checkfirst=True)
