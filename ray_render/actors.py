"""The Ray tile actor: a `TileRenderer` living in a worker, rendering windows on request."""

from __future__ import annotations

import os

import ray
from rasterio.windows import Window


@ray.remote(num_cpus=1)
class TileActor:
    """Opens sources once (in its worker), then renders windows; returns only the tile's pixels."""

    def __init__(self, tree: dict, grid: dict, resampling: str, gdal_cache_mb: int):
        # Set before the first dataset opens: GDAL reads its cache size once.
        os.environ["GDAL_CACHEMAX"] = str(gdal_cache_mb)
        from ray_render.tile import TileRenderer  # imported here so the actor's worker builds it

        self._renderer = TileRenderer(tree, grid, resampling=resampling)

    def render(self, key: tuple[int, int], window: tuple[int, int, int, int]):
        """(key, pixels) for the window (col_off, row_off, width, height)."""
        return key, self._renderer.render(Window(*window))
