"""The rendered product gets a column of its own: `export.rendered` (a models.rendered.Rendered) instead of the
free-form `result["render"]`; `result` keeps what planning found. The `mask` and `mask_crs` columns go: nothing
read them (the AOI is part of the tool tree, `tool`); a downgrade brings them back empty.

Revision ID: 0003
Revises: 0002
Created: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

export = sa.table("export", sa.column("id", sa.Integer), sa.column("result", sa.JSON), sa.column("rendered", sa.JSON))
SHARD_KEYS = ("name", "col_off", "row_off", "width", "height", "bytes", "sha256", "tiles")


def upgrade() -> None:
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rendered', sa.JSON(), nullable=True))
        batch_op.drop_column('mask')
        batch_op.drop_column('mask_crs')
    connection = op.get_bind()
    for row in connection.execute(sa.select(export.c.id, export.c.result)).all():
        render = (row.result or {}).get("render")
        if not render:
            continue
        rest = {key: value for key, value in row.result.items() if key != "render"} or None
        connection.execute(export.update().where(export.c.id == row.id).values(rendered=_product(render), result=rest))


def _product(render: dict) -> dict:
    """A render summary as the flow used to store it, as a Rendered."""
    shards = [{key: shard[key] for key in SHARD_KEYS} for shard in render.get("shards", [])]
    return {"kind": "package" if shards else "cog", "uri": render["uri"], "bytes": render["bytes"],
            "sha256": render["sha256"], "width": render["width"], "height": render["height"], "bands": render["bands"],
            "dtype": render["dtype"], "tiles": render["tiles"], "seconds": render["seconds"], "shards": shards,
            "stac_uri": render.get("stac"), "tiles_by_node": {}, "driver_bytes": 0}


def downgrade() -> None:
    connection = op.get_bind()
    for row in connection.execute(sa.select(export.c.id, export.c.result, export.c.rendered)).all():
        if row.rendered:
            render = {**row.rendered, "path": row.rendered["uri"], "stac": row.rendered.get("stac_uri")}
            connection.execute(export.update().where(export.c.id == row.id)
                               .values(result={**(row.result or {}), "render": render}))
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.drop_column('rendered')
        batch_op.add_column(sa.Column('mask', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('mask_crs', sa.String(), nullable=True))
