"""Rasterise an AOI onto a tile: a pixel is inside when its centre is inside the polygon."""

from __future__ import annotations

import numpy as np
from rasterio.features import geometry_mask
from rasterio.windows import Window
from shapely.geometry import box, shape
from shapely.prepared import prep

from ray_render.grid import OutputGrid


class AoiRasterizer:
    """Holds one AOI (already in the grid's CRS) and answers per-tile inside/outside masks."""

    def __init__(self, geometry: dict, grid: OutputGrid):
        self.geometry = shape(geometry)
        self.grid = grid
        self._prepared = prep(self.geometry)

    def inside(self, window: Window) -> np.ndarray:
        """Boolean (rows, cols): True where the pixel centre lies in the AOI."""
        out_shape = (int(window.height), int(window.width))
        tile_box = box(*self.grid.window_bounds(window))
        if self._prepared.contains(tile_box):
            return np.ones(out_shape, dtype=bool)
        if not self._prepared.intersects(tile_box):
            return np.zeros(out_shape, dtype=bool)
        return geometry_mask([self.geometry], out_shape=out_shape, transform=self.grid.window_transform(window), invert=True)
