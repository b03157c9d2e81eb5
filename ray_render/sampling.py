"""Decimated reads of a render, for its quicklook and band statistics: of one COG, or of a package's shards put
together here, pixel by pixel.

GDAL serves a decimated read from the smallest overview still large enough, so the cost is the same for any
output size. A package's shards are read one by one rather than through their VRT: GDAL's VRT, read decimated,
fills the output pixels that straddle a seam between shards inconsistently (values no source pixel has, which
change from run to run), so statistics and quicklooks read that way are not reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window


@dataclass(frozen=True)
class Sample:
    """A decimated read: every band, masked where there is no data; `alpha` when the fourth band is alpha."""

    pixels: np.ma.MaskedArray
    alpha: bool


def sampled_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(rows, cols) of a read of a width x height raster at most `size` px on its longest side (never enlarged)."""
    scale = max(1.0, max(width, height) / size)
    return max(1, round(height / scale)), max(1, round(width / scale))


def sample(path: str, size: int) -> Sample:
    """The raster at `path` read at most `size` px on its longest side, nearest neighbour."""
    with rasterio.open(path) as src:
        rows, cols = sampled_shape(src.width, src.height, size)
        pixels = src.read(out_shape=(src.count, rows, cols), masked=True, resampling=Resampling.nearest)
        return Sample(pixels, _has_alpha(src))


def mosaic_sample(shards: list[tuple[str, Window]], width: int, height: int, size: int) -> Sample:
    """The width x height grid the shards (GDAL paths, each with its window of the grid) tile, read at most `size`
    px on its longest side: each sampled pixel is read from the shard its centre falls in; where no shard is, it
    is masked."""
    rows, cols = sampled_shape(width, height, size)
    canvas, alpha = None, False
    for path, window in shards:
        row_span = _span(int(window.row_off), int(window.height), height, rows)
        col_span = _span(int(window.col_off), int(window.width), width, cols)
        if row_span[0] >= row_span[1] or col_span[0] >= col_span[1]:
            continue  # a shard narrower than one sampled pixel: its neighbours' pixels cover it
        with rasterio.open(path) as src:
            shape = (src.count, row_span[1] - row_span[0], col_span[1] - col_span[0])
            pixels = src.read(out_shape=shape, masked=True, resampling=Resampling.nearest)
            if canvas is None:
                canvas = np.ma.masked_all((src.count, rows, cols), dtype=pixels.dtype)
                alpha = _has_alpha(src)
        canvas[:, row_span[0]:row_span[1], col_span[0]:col_span[1]] = pixels
    if canvas is None:
        raise ValueError("no shard to sample")
    return Sample(canvas, alpha)


def _span(offset: int, length: int, total: int, sampled: int) -> tuple[int, int]:
    """The sampled pixels [first, end) whose centres fall in [offset, offset + length) of `total` pixels."""
    step = total / sampled
    return max(0, math.ceil(offset / step - 0.5)), min(sampled, math.ceil((offset + length) / step - 0.5))


def _has_alpha(src) -> bool:
    return src.count == 4 and src.colorinterp[3].name == "alpha"
