"""Decimated reads of a package's shards put together: the same pixels as the unsharded COG's where the shards
align with the decimation, every sampled pixel taken from exactly one shard where they do not."""

import numpy as np
from rasterio.windows import Window

from ray_render.grid import plan_grid
from ray_render.render import RenderOptions, Shard, render, render_shards
from ray_render.sampling import _span, mosaic_sample, sample, sampled_shape
from ray_render.shards import shard_windows
from tests.ray_render.test_render import tree_of


def test_sampled_pixels_are_split_between_shards_without_gap_or_overlap():
    rng = np.random.default_rng(2)
    for _ in range(200):
        total, sampled = int(rng.integers(10, 5000)), int(rng.integers(1, 600))
        sampled = min(sampled, total)
        cuts = sorted({0, total, *rng.integers(1, total, int(rng.integers(0, 6))).tolist()})
        owners = np.zeros(sampled, int)
        for start, end in zip(cuts, cuts[1:], strict=False):
            first, stop = _span(start, end - start, total, sampled)
            owners[first:stop] += 1
            centres = (np.arange(first, stop) + 0.5) * total / sampled
            assert ((centres >= start) & (centres < end)).all()  # each pixel's centre lies in its shard
        assert (owners == 1).all()


def test_aligned_shards_sample_to_the_unsharded_cogs_pixels(ray_cluster, scene, tmp_path):
    grid = plan_grid("EPSG:32618", (500000, 4000440, 502560, 4003000), 5)  # 512 x 512 px
    tree, options = tree_of(scene), RenderOptions(tile_size=128)
    whole = render(tree, grid, tmp_path / "whole.tif", options)
    shards = [Shard(name, window, tmp_path / f"{name}.tif") for name, window in shard_windows(grid, 256)]
    results = render_shards(tree, grid, shards, options)
    parts = [(r.path, Window(r.col_off, r.row_off, r.width, r.height)) for r in results]
    # Every other pixel: each shard and the whole COG serve it from their first overview, made of the same
    # 2 x 2 pixels, and shard edges fall between samples.
    assert sampled_shape(grid.width, grid.height, 256) == (256, 256)
    together, single = mosaic_sample(parts, grid.width, grid.height, 256), sample(whole.path, 256)
    assert together.pixels.count() == together.pixels.size
    assert np.array_equal(np.ma.getmaskarray(together.pixels), np.ma.getmaskarray(single.pixels))
    assert np.array_equal(together.pixels.filled(0), single.pixels.filled(0))
    # Unaligned (a 2.56 px step), each sampled pixel still comes from one shard, and the read is reproducible.
    first, again = (mosaic_sample(parts, grid.width, grid.height, 200) for _ in range(2))
    assert np.array_equal(first.pixels.filled(0), again.pixels.filled(0))
