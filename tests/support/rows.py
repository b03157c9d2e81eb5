"""Export rows changed behind the services' backs, as a test needs them: a status, a finer grid."""

from __future__ import annotations

from sqlalchemy import update

from models.db import get_engine
from models.tables import Export


def set_row(export_id: int, **values) -> None:
    """Write `values` onto the export's row as they are, bypassing every status rule."""
    with get_engine().begin() as connection:
        connection.execute(update(Export).where(Export.id == export_id).values(**values))


def finer_grid(session, export_id: int, resolution: float = 30.0) -> dict:
    """The export's grid over the same extent at `resolution`: more tiles, a render long enough to interrupt."""
    from ray_render.grid import OutputGrid, plan_grid

    grid = OutputGrid.from_dict(session.get(Export, export_id).grid)
    left, top = grid.transform.c, grid.transform.f
    right, bottom = left + grid.width * grid.transform.a, top + grid.height * grid.transform.e
    return plan_grid(grid.crs, (left, bottom, right, top), resolution).to_dict()
