"""Slope, aspect and hillshade of an elevation band by Horn's method (as GDAL's gdaldem computes them).

The 3 x 3 window of each pixel is

    a b c
    d e f
    g h i

with rows running south. The gradient eastwards is ((c + 2f + i) - (a + 2d + g)) / (8 dx) and northwards
((a + 2b + c) - (g + 2h + i)) / (8 dy), with dx and dy the pixel's size in metres. A neighbour without a value
takes the centre's (`gdaldem -compute_edges`), so a scene's edge keeps its slope; the centre without a value
gives none.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from affine import Affine
from pyproj import CRS

from models.tooltree import Terrain


@lru_cache(maxsize=16)
def _crs_measures(crs: str) -> tuple[bool, float, float, float]:
    """(geographic?, metres per unit of the first axis, semi-major axis, first eccentricity squared), parsed
    once per CRS rather than once per tile."""
    parsed = CRS.from_user_input(crs)
    ellipsoid = parsed.ellipsoid
    a = ellipsoid.semi_major_metre
    return parsed.is_geographic, parsed.axis_info[0].unit_conversion_factor, a, 1 - (ellipsoid.semi_minor_metre / a) ** 2


def cell_sizes(crs: str, transform: Affine, row_off: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) in metres for `rows` rows of the grid from `row_off`, shaped (rows, 1).

    In a projected CRS they are the pixel size in its linear unit, converted to metres. In a geographic CRS
    they are the ellipsoid's arc lengths of one pixel at each row's latitude (the prime vertical radius times
    cos(latitude) across, the meridional radius along), so each row is exact whatever the tile.
    """
    geographic, metres, a, e2 = _crs_measures(crs)
    if not geographic:
        shape = (rows, 1)
        return np.full(shape, abs(transform.a) * metres), np.full(shape, abs(transform.e) * metres)
    centres = transform.f + transform.e * (np.arange(row_off, row_off + rows, dtype=np.float64) + 0.5)
    latitude = np.radians(centres)[:, None]
    sin2 = np.sin(latitude) ** 2
    prime_vertical = a / np.sqrt(1 - e2 * sin2)
    meridional = a * (1 - e2) / (1 - e2 * sin2) ** 1.5
    dx = prime_vertical * np.cos(latitude) * np.radians(abs(transform.a))
    dy = meridional * np.radians(abs(transform.e))
    return dx, dy


def gradients(elevation: np.ndarray, invalid: np.ndarray, dx: np.ndarray, dy: np.ndarray):
    """(east, north) gradients of the interior of `elevation` (one pixel of halo on each side)."""
    centre = elevation[1:-1, 1:-1]

    def at(dr: int, dc: int) -> np.ndarray:
        rows, cols = elevation.shape
        window = (slice(1 + dr, rows - 1 + dr), slice(1 + dc, cols - 1 + dc))
        return np.where(invalid[window], centre, elevation[window])

    a, b, c = at(-1, -1), at(-1, 0), at(-1, 1)
    d, f = at(0, -1), at(0, 1)
    g, h, i = at(1, -1), at(1, 0), at(1, 1)
    east = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * dx)
    north = ((a + 2 * b + c) - (g + 2 * h + i)) / (8 * dy)
    return east, north


def terrain(node: Terrain, elevation: np.ndarray, invalid: np.ndarray, dx: np.ndarray, dy: np.ndarray):
    """(values, invalid) of the node's product over the interior of `elevation`."""
    east, north = gradients(elevation.astype(np.float64) * node.z_factor, invalid, dx, dy)
    missing = invalid[1:-1, 1:-1].copy()
    slope = np.arctan(np.hypot(east, north))
    if node.product == "slope":
        return np.degrees(slope), missing
    # The downhill direction as a compass bearing: atan2 of its east and north parts.
    aspect = np.degrees(np.arctan2(-east, -north)) % 360.0
    if node.product == "aspect":
        return aspect, missing | ((east == 0) & (north == 0))
    zenith, azimuth = np.radians(90.0 - node.altitude), np.radians(node.azimuth)
    shade = np.cos(zenith) * np.cos(slope) + np.sin(zenith) * np.sin(slope) * np.cos(azimuth - np.radians(aspect))
    return 255.0 * np.clip(shade, 0.0, 1.0), missing
