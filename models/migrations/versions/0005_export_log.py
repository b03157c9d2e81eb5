"""Exports keep a log of their own (`export_log`): submission, claims, the render, each delivery attempt and
every status change, for `GET /api/v1/exports/{id}/logs` and `geoship logs ID`; a status change's line is also
the outbox of its Prefect event (`status`, `emitted_at`).

Revision ID: 0005
Revises: 0004
Created: 2026-12-05 00:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.timestamps

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'export_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('export_id', sa.Integer(), nullable=False),
        sa.Column('at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
        sa.Column('level', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('status', sa.Enum('pending', 'submitted', 'rendering', 'delivering', 'success', 'error',
                                    name='exportstatus', create_type=False), nullable=True),
        sa.Column('emitted_at', models.timestamps.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['export_id'], ['export.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_export_log_export_id'), 'export_log', ['export_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_export_log_export_id'), table_name='export_log')
    op.drop_table('export_log')
