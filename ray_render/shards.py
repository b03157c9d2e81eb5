"""Shards: an output too big for one file, split into windows of one pixel grid, tied together by a VRT.

Every shard is a whole number of tiles (so no tile straddles two files) and a window of the same output
grid, so the shards meet edge to edge with no gap and no overlap: put together, they are the output.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box
from shapely.prepared import prep

from ray_render.geometry import shares_area
from ray_render.grid import OutputGrid

# The folder, beside an export's staging path, its shards are written to before packaging.
SHARDS_DIR = "shards"

GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
              "float32": "Float32", "float64": "Float64"}


def shard_side(bands: int, itemsize: int, tile_size: int, max_bytes: int) -> int:
    """The side, in pixels, of square shards of at most `max_bytes` uncompressed: a multiple of the tile size."""
    per_pixel = bands * itemsize
    side = int(math.isqrt(max(1, max_bytes // per_pixel)))
    return max(tile_size, side // tile_size * tile_size)


def _side_when_sharded(grid: OutputGrid, output, tile_size: int, max_bytes: int) -> int | None:
    """The shard side for an output (an `Output` node) over `max_bytes` uncompressed; None when one file will do."""
    bands, itemsize = len(output.output_bands()), np.dtype(output.dtype).itemsize
    if grid.pixels * bands * itemsize <= max_bytes:
        return None
    return shard_side(bands, itemsize, tile_size, max_bytes)


def plan_shards(grid: OutputGrid, output, tile_size: int, max_bytes: int) -> list[tuple[str, Window]]:
    """The shard windows of an output (an `Output` node) over `max_bytes` uncompressed; [] when one file will do."""
    side = _side_when_sharded(grid, output, tile_size, max_bytes)
    return [] if side is None else shard_windows(grid, side)


def count_shards(grid: OutputGrid, output, coverage, tile_size: int, max_bytes: int, most: int = 4096) -> int:
    """How many files an output will be: 1, or the shards whose area meets `coverage` (where data can be).

    Cheap for any grid: no tile is planned. Above `most` shard windows the window count is returned, an
    upper bound (such an output is far beyond any size limit anyway).
    """
    side = _side_when_sharded(grid, output, tile_size, max_bytes)
    if side is None:
        return 1
    windows = math.ceil(grid.height / side) * math.ceil(grid.width / side)
    if windows > most:
        return windows
    area = prep(coverage)
    return sum(1 for _, window in shard_windows(grid, side) if shares_area(area, box(*grid.window_bounds(window))))


def shard_windows(grid: OutputGrid, side: int) -> list[tuple[str, Window]]:
    """The grid cut into `side` x `side` windows (edge ones smaller), named r<row>-c<col>, row by row."""
    rows, cols = math.ceil(grid.height / side), math.ceil(grid.width / side)
    digits = len(str(max(rows, cols) - 1))
    return [
        (f"r{r:0{digits}d}-c{c:0{digits}d}",
         Window(c * side, r * side, min(side, grid.width - c * side), min(side, grid.height - r * side)))
        for r in range(rows) for c in range(cols)
    ]


def mosaic_vrt(grid: OutputGrid, shards: list[tuple[str, Window]], band_names: list[str], dtype: str,
               nodata: float | None, masked: bool = False, alpha: bool = False) -> str:
    """A GDAL VRT presenting the shards (their file names, beside the VRT) as the one output grid.

    `masked`: the shards carry an internal mask (lossy outputs) rather than a nodata value.
    `alpha`: the bands are red, green, blue and alpha (a colour map), and the VRT says so.
    """
    wkt = escape(CRS.from_user_input(grid.crs).to_wkt())
    transform = ", ".join(repr(v) for v in (grid.transform.c, grid.transform.a, grid.transform.b,
                                            grid.transform.f, grid.transform.d, grid.transform.e))

    def sources(band: str) -> str:
        return "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="1">{escape(href)}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{int(w.width)}" ySize="{int(w.height)}"/>'
            f'<DstRect xOff="{int(w.col_off)}" yOff="{int(w.row_off)}" xSize="{int(w.width)}" ySize="{int(w.height)}"/>'
            "</SimpleSource>"
            for href, w in shards
        )

    bands = []
    for index, name in enumerate(band_names, start=1):
        no_data = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None and not masked else ""
        interp = f"<ColorInterp>{('Red', 'Green', 'Blue', 'Alpha')[index - 1]}</ColorInterp>" if alpha else ""
        bands.append(f'<VRTRasterBand dataType="{GDAL_TYPES[dtype]}" band="{index}">'
                     f"<Description>{escape(name)}</Description>{interp}{no_data}{sources(str(index))}</VRTRasterBand>")
    mask = (f'<MaskBand><VRTRasterBand dataType="Byte">{sources("mask,1")}</VRTRasterBand></MaskBand>'
            if masked else "")
    return (f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">'
            f"<SRS>{wkt}</SRS><GeoTransform>{transform}</GeoTransform>{mask}{''.join(bands)}</VRTDataset>\n")
