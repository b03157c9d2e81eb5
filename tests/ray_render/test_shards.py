"""Shards: windows of one grid, each its own COG, which a VRT puts back together pixel for pixel."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from ray_render.geometry import bounds_polygon
from ray_render.grid import plan_grid
from ray_render.render import RenderOptions, Shard, render, render_shards
from ray_render.shards import mosaic_vrt, shard_side, shard_windows
from tests.ray_render.test_render import tree_of


def test_shard_sides_are_whole_tiles_within_the_byte_limit():
    side = shard_side(bands=3, itemsize=2, tile_size=256, max_bytes=10 * 1024**2)
    assert side % 256 == 0 and side * side * 3 * 2 <= 10 * 1024**2
    assert shard_side(bands=3, itemsize=2, tile_size=256, max_bytes=1) == 256  # never less than a tile


def test_shard_windows_cover_the_grid_once():
    grid = plan_grid("EPSG:3857", (0, 0, 1030, 700), 1.0)
    windows = shard_windows(grid, 512)
    assert [name for name, _ in windows] == ["r0-c0", "r0-c1", "r0-c2", "r1-c0", "r1-c1", "r1-c2"]
    cover = np.zeros((grid.height, grid.width), int)
    for _, w in windows:
        cover[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("compress", ["DEFLATE"])
def test_shards_put_together_by_their_vrt_equal_the_unsharded_render(ray_cluster, scene, tmp_path, compress):
    grid = plan_grid("EPSG:3857", (-8348900, 4320300, -8346000, 4323500), 4.3)
    aoi = bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").buffer(-200)
    tree = tree_of(scene, aoi, "EPSG:3857")
    options = RenderOptions(tile_size=128)
    whole = render(tree, grid, tmp_path / "whole.tif", options)

    windows = shard_windows(grid, 256)
    shards = [Shard(name, window, tmp_path / "shards" / f"x-{name}.tif") for name, window in windows]
    (tmp_path / "shards").mkdir()
    progress = []
    results = render_shards(tree, grid, shards, options, on_progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (whole.tiles, whole.tiles)  # one progress count over every shard
    assert sum(r.tiles for r in results) == whole.tiles
    assert len(results) == len(windows)  # this AOI reaches every shard
    for result in results:
        assert cog_validate(result.path)[0]
        with rasterio.open(result.path) as shard:
            window = next(w for n, w in windows if n == result.name)
            assert (shard.width, shard.height) == (window.width, window.height)
            assert shard.transform == grid.window_transform(window)  # the same pixel lattice
    vrt = tmp_path / "shards" / "x.vrt"
    vrt.write_text(mosaic_vrt(grid, [(Path(r.path).name, _window(r)) for r in results], whole.bands, whole.dtype, 0))
    with rasterio.open(vrt) as mosaic, rasterio.open(whole.path) as single:
        assert (mosaic.width, mosaic.height, mosaic.crs, mosaic.transform) == (single.width, single.height, single.crs,
                                                                               single.transform)
        assert mosaic.nodata == 0 and mosaic.descriptions == single.descriptions
        together, expected = mosaic.read(), single.read()
    assert (expected > 0).mean() > 0.3
    assert np.array_equal(together, expected)  # seamless: not one pixel differs along shard edges


def test_a_shard_with_no_tile_writes_no_file(ray_cluster, scene, tmp_path):
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    from shapely.geometry import box

    tree = tree_of(scene, box(500000, 4002000, 501000, 4003000))  # the top-left corner only
    out = tmp_path / "shards"
    out.mkdir()
    shards = [Shard(name, window, out / f"{name}.tif") for name, window in shard_windows(grid, 128)]
    results = render_shards(tree, grid, shards, RenderOptions(tile_size=128))
    assert [r.name for r in results] == ["r0-c0"]
    assert sorted(p.name for p in out.iterdir()) == ["r0-c0.tif"]


def _window(result):
    from rasterio.windows import Window

    return Window(result.col_off, result.row_off, result.width, result.height)
