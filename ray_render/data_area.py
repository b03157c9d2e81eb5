"""Where a scene holds data: the part of its raster with valid pixels, as a polygon in the scene's own CRS.

A scene's bounds are a rectangle, but most imagery fills only part of it: Landsat's and Sentinel-2's tilted
swaths leave a nodata collar of a fifth to a third of the rectangle, and a reprojected or clipped scene leaves
corners empty. Warping the collar costs as much as warping data. The tile readers skip every warp block that a
scene's data area cannot reach (`SceneReader.overlaps`): on the benchmark's mosaic of four such scenes the
readers warped 63 MP instead of 80 for the same pixels (2026-12-07).

The area is computed once, when the scene is added to the catalogue, from every pixel of its files: a pixel is
valid where any band holds data (a value other than the scene's nodata value, or where GDAL's mask says so when
there is none). It must never leave out a valid pixel, since a reader would then skip it: the valid pixels are
gathered into square cells, the cells are traced into polygons, and the simplified outline is grown by the
simplification's own tolerance and checked to hold every cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import box, shape

from ray_render.geometry import to_geojson
from ray_render.nodata import nodata_pixel

# The coarse grid that valid pixels are gathered into has at most this many cells along a side (and cells of at
# least MIN_CELL pixels): a 10,980 px Sentinel-2 band gets 11 px cells, which is fine beside the readers' 512 px
# warp blocks.
MAX_CELLS = 1024
MIN_CELL = 8
# Pixels read at once along each side while gathering (in whole blocks of the file).
CHUNK = 1024
# GDAL's block cache while tracing: every block is read once, so the cache needs to hold little.
TRACE_CACHE_BYTES = 64 * 1024 * 1024
# An area traced with more vertices than this is simplified further: it travels inside every export's tool tree
# (about 30 bytes a vertex), once per scene. A tilted swath traces to under 100.
MAX_VERTICES = 128


def cell_size(width: int, height: int) -> int:
    """The side, in pixels, of the cells a `width` x `height` raster's valid pixels are gathered into."""
    return max(MIN_CELL, math.ceil(max(width, height) / MAX_CELLS))


def valid_cells(uris: Iterable[str], nodata: float | None, open_file=rasterio.open) -> tuple[np.ndarray, Affine, tuple]:
    """(cells, transform, bounds): for each cell of the files' shared grid, whether any band of any file holds a valid
    pixel there; the cells' transform; the raster's bounds. `nodata`: the scene's nodata value (None: each file's
    own, else its mask), as the readers take it. `open_file` opens a URI as a rasterio dataset.

    Each file is read in windows of whole blocks, so every block is decoded once, and with GDAL's block cache held
    to TRACE_CACHE_BYTES: with its default (5 % of the machine's memory) tracing one 13,000 px 4-band scene left
    the process 1.2 GB larger, for a cache that nothing read again."""
    cells = transform = bounds = None
    with rasterio.Env(GDAL_CACHEMAX=TRACE_CACHE_BYTES):  # in bytes, as rasterio takes it
        for uri in uris:
            with open_file(uri) as src:
                cell = cell_size(src.width, src.height)
                if cells is None:
                    cells = np.zeros((math.ceil(src.height / cell), math.ceil(src.width / cell)), dtype=bool)
                    transform, bounds = src.transform @ Affine.scale(cell), tuple(src.bounds)
                for window in whole_block_windows(src.width, src.height, src.block_shapes[0]):
                    valid = _valid_pixels(src, window, src.nodata if nodata is None else nodata)
                    _gather(cells, valid, int(window.row_off), int(window.col_off), cell)
    return cells, transform, bounds


def whole_block_windows(width: int, height: int, block: tuple[int, int]) -> list[Window]:
    """Windows covering a `width` x `height` raster whose blocks are `block` (rows, cols), each made of whole blocks
    and about CHUNK x CHUNK pixels (at least one block): whole rows for a file of strips, which a square window
    would decode once per window across."""
    block_rows, block_cols = block
    cols = min(width, block_cols * max(1, CHUNK // block_cols))
    rows = min(height, block_rows * max(1, CHUNK * CHUNK // cols // block_rows))
    return [Window(col, row, min(cols, width - col), min(rows, height - row))
            for row in range(0, height, rows) for col in range(0, width, cols)]


def _gather(cells: np.ndarray, valid: np.ndarray, row: int, col: int, cell: int) -> None:
    """Mark in `cells` every cell holding a True of `valid`, the pixels from (`row`, `col`); the window's edges need
    not fall on the cells' (those shared with a neighbouring window are marked from both)."""
    def starts(first: int, count: int) -> tuple[np.ndarray, int]:
        index = np.arange(first, first + count) // cell
        return np.flatnonzero(np.diff(index, prepend=-1)), int(index[0])

    rows, top = starts(row, valid.shape[0])
    cols, left = starts(col, valid.shape[1])
    found = np.logical_or.reduceat(np.logical_or.reduceat(valid, rows, axis=0), cols, axis=1)
    cells[top:top + found.shape[0], left:left + found.shape[1]] |= found


def _valid_pixels(src, window: Window, nodata: float | None) -> np.ndarray:
    """Where any band of `src` holds data in `window`, as the readers take it (`reader._valid`). A float compared
    with `!=` counts as valid a few pixels GDAL would take for nodata (it compares within a tolerance): too many is
    safe, too few is not."""
    if nodata is None:
        return src.dataset_mask(window=window) > 0
    pixels = src.read(window=window)
    if np.issubdtype(pixels.dtype, np.floating):
        invalid = np.isnan(pixels) if math.isnan(nodata) else pixels == pixels.dtype.type(nodata)
    elif (pixel := nodata_pixel(pixels.dtype, nodata)) is not None:
        invalid = pixels == pixel
    else:  # a value no pixel of the type holds (-1 for bytes): every pixel is valid
        return np.ones(pixels.shape[1:], dtype=bool)
    return ~invalid.all(axis=0)


def trace(cells: np.ndarray, transform: Affine, bounds: tuple) -> shapely.Geometry | None:
    """The polygon holding every True cell (None when there is none), with few vertices: simplified, then grown by
    the simplification's tolerance, which is checked to hold every cell."""
    if not cells.any():
        return None
    polygons = [shape(geometry) for geometry, _ in
                rasterio.features.shapes(cells.astype(np.uint8), mask=cells, transform=transform)]
    traced = shapely.union_all(polygons)
    tolerance = max(abs(transform.a), abs(transform.e))
    while True:
        outline = traced.simplify(tolerance).buffer(tolerance, join_style="mitre")
        if not outline.contains(traced):  # not expected: Douglas-Peucker keeps within its tolerance
            outline = traced.buffer(tolerance, join_style="mitre")
        area = outline.intersection(box(*bounds))
        if shapely.get_num_coordinates(area) <= MAX_VERTICES:
            return area
        tolerance *= 2


def data_area(uris: Iterable[str], nodata: float | None, open_file=rasterio.open) -> dict | None:
    """The GeoJSON MultiPolygon, in the files' CRS, of where a scene made of `uris` (one grid) holds valid pixels;
    None when it holds none (the readers then go by its bounds, as for a scene added before areas were traced)."""
    area = trace(*valid_cells(uris, nodata, open_file))
    return None if area is None or area.is_empty else to_geojson(area)
