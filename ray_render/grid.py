"""The output grid and its tiling: small value types and pure functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window

# A (Big)TIFF stores its width and height as 32-bit unsigned integers: no grid may be wider or taller.
MAX_SIDE_PX = 2**32 - 1


@dataclass(frozen=True)
class OutputGrid:
    """A north-up pixel grid: CRS, affine transform and size. x is columns, y is rows."""

    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def resolution(self) -> float:
        return self.transform.a

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return (left, top + self.transform.e * self.height, left + self.transform.a * self.width, top)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def window_transform(self, window: Window) -> Affine:
        return self.transform @ Affine.translation(window.col_off, window.row_off)

    def window_bounds(self, window: Window) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of `window`: `window_transform`'s numbers, in plain arithmetic (a north-up
        grid), as it runs for every strip of every tile a scene might fill (`SceneReader.overlaps`)."""
        t = self.transform
        left, top = t.a * window.col_off + t.c, t.e * window.row_off + t.f
        return (left, top + t.e * window.height, left + t.a * window.width, top)

    def to_dict(self) -> dict[str, Any]:
        return {"crs": self.crs, "transform": list(self.transform)[:6], "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputGrid:
        return cls(data["crs"], Affine(*data["transform"]), int(data["width"]), int(data["height"]))


@dataclass(frozen=True, order=True)
class TileIndex:
    """Position of a tile in the tiling: row, then column."""

    row: int
    col: int


def plan_grid(crs: str, bounds: tuple[float, float, float, float], resolution: float) -> OutputGrid:
    """The grid covering `bounds` at `resolution`, with edges aligned to multiples of the resolution.

    Alignment (like gdalwarp's -tap) makes two exports of neighbouring areas share one pixel lattice.
    """
    if not resolution > 0 or not math.isfinite(resolution):
        raise ValueError(f"resolution must be a positive number, not {resolution}")
    left, bottom, right, top = bounds
    across = max(right - left, top - bottom) / resolution
    if not across <= MAX_SIDE_PX:
        raise ValueError(f"resolution {resolution:g} makes a grid {across:.3g} px across, more than a GeoTIFF's "
                         f"{MAX_SIDE_PX:,}")
    # A small epsilon keeps float noise (e.g. 299.99999999) from adding a whole row or column.
    eps = 1e-9 * resolution
    left = math.floor(left / resolution + eps) * resolution
    bottom = math.floor(bottom / resolution + eps) * resolution
    right = math.ceil(right / resolution - eps) * resolution
    top = math.ceil(top / resolution - eps) * resolution
    width = max(1, round((right - left) / resolution))
    height = max(1, round((top - bottom) / resolution))
    return OutputGrid(crs, Affine(resolution, 0.0, left, 0.0, -resolution, top), width, height)


def tile_windows(grid: OutputGrid, tile_size: int) -> Iterator[tuple[TileIndex, Window]]:
    """Every tile of `grid`, row by row: (index, window); edge tiles are clipped to the grid."""
    if tile_size < 1:
        raise ValueError("tile_size must be positive")
    for row, row_off in enumerate(range(0, grid.height, tile_size)):
        for col, col_off in enumerate(range(0, grid.width, tile_size)):
            window = Window(col_off, row_off, min(tile_size, grid.width - col_off), min(tile_size, grid.height - row_off))
            yield TileIndex(row, col), window


def starts_inside(window: Window, outer: Window) -> bool:
    """Whether `window`'s top-left pixel lies in `outer` (tiles are assigned to shards this way)."""
    return (outer.col_off <= window.col_off < outer.col_off + outer.width
            and outer.row_off <= window.row_off < outer.row_off + outer.height)


def native_resolution_in(dst_crs: str, src_crs: str, width: int, height: int, bounds) -> float:
    """A scene's pixel size expressed in `dst_crs` units, as gdalwarp would choose it."""
    src, dst = CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs)
    transform, _, _ = calculate_default_transform(src, dst, width, height, *bounds)
    return min(abs(transform.a), abs(transform.e))
