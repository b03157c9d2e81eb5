"""Pixel sizes for terrain: metres on the ellipsoid row by row in a geographic CRS, the linear unit elsewhere;
and slope on a plane, whose gradient is known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from pyproj import Geod

from models.tooltree import Terrain, parse_tool_tree
from ray_render.terrain import cell_sizes, terrain
from tests.models.tooltree.conftest import leaf, output


def test_geographic_pixels_are_measured_on_the_ellipsoid_at_each_row():
    res = 0.001
    transform = Affine(res, 0, 10.0, 0, -res, 61.0)  # rows from 61 degrees north, going south
    dx, dy = cell_sizes("EPSG:4326", transform, row_off=1000, rows=3)
    geod = Geod(ellps="WGS84")
    for row in range(3):
        lat = 61.0 - res * (1000 + row + 0.5)
        across = geod.inv(10.0, lat, 10.0 + res, lat)[2]
        along = geod.inv(10.0, lat - res / 2, 10.0, lat + res / 2)[2]
        assert dx[row, 0] == pytest.approx(across, rel=1e-6)
        assert dy[row, 0] == pytest.approx(along, rel=1e-5)


def test_projected_pixels_are_converted_from_the_crs_unit_to_metres():
    dx, dy = cell_sizes("EPSG:2263", Affine(10, 0, 0, 0, -20, 0), 0, 2)  # New York Long Island, US survey feet
    assert dx[0, 0] == pytest.approx(10 * 1200 / 3937) and dy[1, 0] == pytest.approx(20 * 1200 / 3937)


@pytest.mark.parametrize("product,expected", [
    ("slope", math.degrees(math.atan(math.hypot(0.2, 0.1)))),
    # Rising east and north: downhill faces south-west, at atan2(-east, -north) from north.
    ("aspect", (math.degrees(math.atan2(-0.2, -0.1)) + 360) % 360),
])
def test_a_plane_has_one_slope_and_one_aspect(product, expected):
    rows, cols = np.mgrid[0:6, 0:7].astype(np.float64)
    elevation = 100 + 0.2 * cols * 5 - 0.1 * rows * 5  # 5 m pixels; rows run south, so north is -rows
    node = parse_tool_tree(output({"type": "terrain", "product": product, "input": leaf(bands=["red"])})).root.input
    assert isinstance(node, Terrain)
    values, missing = terrain(node, elevation, np.zeros(elevation.shape, bool), np.full((4, 1), 5.0), np.full((4, 1), 5.0))
    assert not missing.any() and np.allclose(values, expected)
