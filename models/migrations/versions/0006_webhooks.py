"""Webhooks, and renders reused by identical exports (`export.render_fingerprint`, flows/services/reuse.py).

Webhooks: a user's signing secret and default URL (`webhook`), an export's own URL (`export.webhook_url`),
each status change's delivery state (`export_log.webhook_due_at`, `notified_at`) and every attempt
(`webhook_attempt`). Status changes logged before this revision count as notified: nobody asked for them.

Revision ID: 0006
Revises: 0005
Created: 2026-12-05 06:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.timestamps

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('url', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('secret_sealed', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('secret_hint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['owner_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('owner_id'),
    )
    op.create_table(
        'webhook_attempt',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('export_id', sa.Integer(), nullable=False),
        sa.Column('log_id', sa.Integer(), nullable=False),
        sa.Column('event', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
        sa.Column('host', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('final', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['export_id'], ['export.id']),
        sa.ForeignKeyConstraint(['log_id'], ['export_log.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_webhook_attempt_export_id'), 'webhook_attempt', ['export_id'], unique=False)
    op.create_index(op.f('ix_webhook_attempt_log_id'), 'webhook_attempt', ['log_id'], unique=False)
    with op.batch_alter_table('export') as batch:
        batch.add_column(sa.Column('webhook_url', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column('render_fingerprint', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.create_index(batch.f('ix_export_render_fingerprint'), ['render_fingerprint'], unique=False)
    with op.batch_alter_table('export_log') as batch:
        batch.add_column(sa.Column('webhook_due_at', models.timestamps.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('notified_at', models.timestamps.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE export_log SET notified_at = at WHERE status IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('export_log') as batch:
        batch.drop_column('notified_at')
        batch.drop_column('webhook_due_at')
    with op.batch_alter_table('export') as batch:
        batch.drop_index(batch.f('ix_export_render_fingerprint'))
        batch.drop_column('render_fingerprint')
        batch.drop_column('webhook_url')
    op.drop_index(op.f('ix_webhook_attempt_log_id'), table_name='webhook_attempt')
    op.drop_index(op.f('ix_webhook_attempt_export_id'), table_name='webhook_attempt')
    op.drop_table('webhook_attempt')
    op.drop_table('webhook')
