"""Initial schema: users, catalogue, credentials, exports and their targets, download links and metering.

Revision ID: 0001
Revises: 
Created: 2026-11-25 20:21:11.657566
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.timestamps

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_name'), ['name'], unique=True)
        batch_op.create_index(batch_op.f('ix_user_token_hash'), ['token_hash'], unique=False)

    op.create_table('credential',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('s3', 'dropbox', name='credentialkind'), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('hint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('sealed', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner_id', 'label')
    )
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credential_owner_id'), ['owner_id'], unique=False)

    op.create_table('project',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('visibility', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner_id', 'name')
    )
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_owner_id'), ['owner_id'], unique=False)

    op.create_table('scene',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('visibility', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('crs_wkt', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('epsg', sa.Integer(), nullable=True),
    sa.Column('bounds', sa.JSON(), nullable=False),
    sa.Column('footprint', sa.JSON(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('res_x', sa.Float(), nullable=False),
    sa.Column('res_y', sa.Float(), nullable=False),
    sa.Column('dtype', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('nodata', sa.Float(), nullable=True),
    sa.Column('bands', sa.JSON(), nullable=False),
    sa.Column('acquired_at', models.timestamps.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('scene', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scene_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_scene_owner_id'), ['owner_id'], unique=False)

    op.create_table('export',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('tool', sa.JSON(), nullable=False),
    sa.Column('output_srid', sa.Integer(), nullable=False),
    sa.Column('resolution', sa.Float(), nullable=False),
    sa.Column('mask', sa.JSON(), nullable=True),
    sa.Column('mask_crs', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('grid', sa.JSON(), nullable=False),
    sa.Column('resampling', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('compression', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'submitted', 'rendering', 'delivering', 'success', 'error', name='exportstatus'), nullable=False),
    sa.Column('tiles_done', sa.Integer(), nullable=False),
    sa.Column('tiles_total', sa.Integer(), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('artifact', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('flow_run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('heartbeat_at', models.timestamps.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', models.timestamps.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_status'), ['status'], unique=False)
        batch_op.create_index('ix_export_status_created', ['status', 'created_at'], unique=False)

    op.create_table('projectscene',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('scene_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.ForeignKeyConstraint(['scene_id'], ['scene.id'], ),
    sa.PrimaryKeyConstraint('project_id', 'scene_id')
    )
    with op.batch_alter_table('projectscene', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projectscene_position'), ['position'], unique=False)

    op.create_table('projectshare',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('project_id', 'user_id')
    )
    op.create_table('sceneshare',
    sa.Column('scene_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['scene_id'], ['scene.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('scene_id', 'user_id')
    )
    op.create_table('exporttarget',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('http', 's3', 'dropbox', name='targetkind'), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('credential_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'delivering', 'success', 'error', name='targetstatus'), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('updated_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credential_id'], ['credential.id'], ),
    sa.ForeignKeyConstraint(['export_id'], ['export.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exporttarget', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exporttarget_export_id'), ['export_id'], unique=False)

    op.create_table('idempotencykey',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=False),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['export.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('user_id', 'key')
    )
    op.create_table('downloadlink',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=True),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('token_sealed', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('expires_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.Column('byte_rate_limit', sa.Integer(), nullable=True),
    sa.Column('download_quota', sa.Integer(), nullable=True),
    sa.Column('downloads_used', sa.Integer(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('created_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['export.id'], ),
    sa.ForeignKeyConstraint(['target_id'], ['exporttarget.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('downloadlink', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_downloadlink_export_id'), ['export_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_downloadlink_token_hash'), ['token_hash'], unique=True)

    op.create_table('download',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('started_at', models.timestamps.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', models.timestamps.UTCDateTime(timezone=True), nullable=True),
    sa.Column('range_header', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('range_start', sa.Integer(), nullable=False),
    sa.Column('range_end', sa.Integer(), nullable=True),
    sa.Column('bytes_sent', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['downloadlink.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_download_link_id'), ['link_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_download_link_id'))

    op.drop_table('download')
    with op.batch_alter_table('downloadlink', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_downloadlink_token_hash'))
        batch_op.drop_index(batch_op.f('ix_downloadlink_export_id'))

    op.drop_table('downloadlink')
    op.drop_table('idempotencykey')
    with op.batch_alter_table('exporttarget', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exporttarget_export_id'))

    op.drop_table('exporttarget')
    op.drop_table('sceneshare')
    op.drop_table('projectshare')
    with op.batch_alter_table('projectscene', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projectscene_position'))

    op.drop_table('projectscene')
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.drop_index('ix_export_status_created')
        batch_op.drop_index(batch_op.f('ix_export_status'))
        batch_op.drop_index(batch_op.f('ix_export_owner_id'))

    op.drop_table('export')
    with op.batch_alter_table('scene', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scene_owner_id'))
        batch_op.drop_index(batch_op.f('ix_scene_name'))

    op.drop_table('scene')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_owner_id'))
        batch_op.drop_index(batch_op.f('ix_project_name'))

    op.drop_table('project')
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credential_owner_id'))

    op.drop_table('credential')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_token_hash'))
        batch_op.drop_index(batch_op.f('ix_user_name'))

    op.drop_table('user')
    if op.get_bind().dialect.name == "postgresql":  # drop_table leaves PostgreSQL's enum types behind
        for enum in ("credentialkind", "exportstatus", "targetkind", "targetstatus"):
            op.execute(f"DROP TYPE IF EXISTS {enum}")
