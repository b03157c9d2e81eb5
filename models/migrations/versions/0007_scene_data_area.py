"""Scenes get a data area: where they hold valid pixels, in their own CRS (ray_render/data_area.py). The tile
readers skip warp blocks it cannot reach. Scenes added before this revision have none and are read by their
bounds, as before.

Revision ID: 0007
Revises: 0006
Created: 2026-12-07 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scene', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_area', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scene', schema=None) as batch_op:
        batch_op.drop_column('data_area')
