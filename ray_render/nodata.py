"""A nodata value as a pixel of an integer type: the value pixels are compared with.

Comparing integer pixels with a Python float (a nodata value as JSON and GDAL give it) casts every pixel to
float64 first: NumPy promotes the array, not the scalar. On a 3-band 1024 x 1024 uint8 tile that is 1.15 ms
against 0.21 ms with the value typed like the pixels (this machine kind, NumPy 2.4), and the tile actors make
such comparisons on every tile and every overview block.
"""

from __future__ import annotations

import numpy as np


def exact_nodata(dtype: np.dtype, nodata: float) -> bool:
    """Whether pixels of `dtype` equal `nodata` exactly or not at all: an integer type, and an integer value it holds."""
    if not np.issubdtype(dtype, np.integer) or not float(nodata).is_integer():
        return False
    info = np.iinfo(dtype)
    return info.min <= nodata <= info.max


def nodata_pixel(dtype: np.dtype, nodata: float | None):
    """`nodata` as a scalar of the integer type `dtype` when pixels of that type can equal it (`exact_nodata`), else
    None: no pixel of that type is nodata."""
    dtype = np.dtype(dtype)
    if nodata is None or not exact_nodata(dtype, nodata):
        return None
    return dtype.type(int(nodata))
