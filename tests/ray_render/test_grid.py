"""Output grid planning and tiling, with exact expectations."""

import pytest
from affine import Affine

from ray_render.grid import OutputGrid, TileIndex, native_resolution_in, plan_grid, tile_windows


def test_grid_edges_snap_outwards_to_multiples_of_the_resolution():
    grid = plan_grid("EPSG:3857", (1003.0, 2001.0, 1997.0, 2999.5), 10.0)
    assert grid.transform == Affine(10.0, 0.0, 1000.0, 0.0, -10.0, 3000.0)
    assert (grid.width, grid.height) == (100, 100)
    assert grid.bounds == (1000.0, 2000.0, 2000.0, 3000.0)


def test_float_noise_does_not_add_a_row_or_column():
    grid = plan_grid("EPSG:32618", (0.0, 0.0, 300.00000000001, 299.99999999999), 30.0)
    assert (grid.width, grid.height) == (10, 10)


def test_invalid_resolution_is_refused():
    with pytest.raises(ValueError, match="positive"):
        plan_grid("EPSG:3857", (0, 0, 1, 1), 0)


@pytest.mark.parametrize("resolution", [1e-12, 5e-324])
def test_a_grid_wider_than_a_tiff_is_refused_not_overflowed(resolution):
    with pytest.raises(ValueError, match="more than a GeoTIFF's 4,294,967,295"):
        plan_grid("EPSG:3857", (-20037508.34, -20037508.34, 20037508.34, 20037508.34), resolution)


def test_tiles_cover_the_grid_exactly_once_with_clipped_edges():
    grid = OutputGrid("EPSG:3857", Affine(1, 0, 0, 0, -1, 0), width=1100, height=600)
    tiles = list(tile_windows(grid, 512))
    assert [i for i, _ in tiles] == [TileIndex(r, c) for r in range(2) for c in range(3)]
    sizes = {(i.row, i.col): (w.col_off, w.row_off, w.width, w.height) for i, w in tiles}
    assert sizes[(0, 0)] == (0, 0, 512, 512)
    assert sizes[(0, 2)] == (1024, 0, 76, 512)
    assert sizes[(1, 2)] == (1024, 512, 76, 88)
    assert sum(w.width * w.height for _, w in tiles) == grid.pixels


def test_window_bounds_follow_the_grid_transform():
    grid = OutputGrid("EPSG:3857", Affine(10, 0, 1000, 0, -10, 5000), width=100, height=100)
    _, window = list(tile_windows(grid, 50))[3]
    assert grid.window_bounds(window) == (1500.0, 4000.0, 2000.0, 4500.0)


def test_grid_survives_a_json_round_trip():
    grid = plan_grid("EPSG:3857", (0, 0, 95, 45), 10)
    assert OutputGrid.from_dict(grid.to_dict()) == grid


def test_native_resolution_is_expressed_in_output_units():
    # 30 m pixels at 46 degrees north are about 30 / cos(46) = 43 m in Web Mercator.
    res = native_resolution_in("EPSG:3857", "EPSG:32632", 800, 800, (712530, 5086140, 736530, 5110140))
    assert 42.5 < res < 43.6
