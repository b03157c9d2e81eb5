"""Rendering through Ray tile actors into a COG: validity, progress, skipped tiles, seamless tiling."""

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box, mapping

from models.tooltree import Identity, Mask, Output, ProjectSource, parse_tool_tree
from ray_render.grid import plan_grid
from ray_render.reader import WARP_BLOCK
from ray_render.render import RenderOptions, plan_tiles, render
from ray_render.writer import CogOptions


def tree_of(scene, aoi=None, crs="EPSG:32618"):
    node = Identity(input=ProjectSource(scenes=[scene], bands=["red", "green", "blue"]))
    if aoi is not None:
        node = Mask(input=node, geometry=mapping(aoi), crs=crs)
    return parse_tool_tree(Output(input=node, dtype="uint16", nodata=0).model_dump(mode="json"))


def test_render_writes_a_valid_cog_and_reports_progress(ray_cluster, scene, tmp_path):
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    calls = []
    result = render(tree_of(scene), grid, tmp_path / "out.tif", RenderOptions(tile_size=128, cog=CogOptions(blocksize=128)),
                    on_progress=lambda done, total: calls.append((done, total)))
    valid, errors, _warnings = cog_validate(str(tmp_path / "out.tif"))
    assert valid, errors
    assert result.tiles == 9 and calls[0] == (0, 9) and calls[-1] == (9, 9)
    assert [d for d, _ in calls] == list(range(10))
    with rasterio.open(tmp_path / "out.tif") as out, rasterio.open(scene.bands[0].uri) as src:
        assert out.nodata == 0 and out.count == 3 and out.dtypes[0] == "uint16"
        assert out.descriptions == ("red", "green", "blue")
        assert out.overviews(1)  # internal overviews exist
        assert (out.read() == src.read()).all()  # same grid: pixels pass through unchanged
    assert not list(tmp_path.glob("*.work.tif")) and not list(tmp_path.glob("*.partial"))


def test_tiles_outside_the_aoi_are_never_planned(scene):
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    aoi = box(500000, 4002000, 501000, 4003000)  # the top-left ninth
    tiles = plan_tiles(tree_of(scene, aoi), grid, 100)
    assert [(i.row, i.col) for i, _ in tiles] == [(0, 0)]  # neighbours only touching its edge are skipped
    assert len(list(plan_tiles(tree_of(scene), grid, 100))) == 9


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_tile_size_does_not_change_a_single_pixel(ray_cluster, scene, tmp_path, resampling):
    # A grid several warp blocks wide, so tiles smaller than, larger than and as large as the whole grid
    # all occur; the default (approximate) transformer, whose interpolation must not follow the tiles.
    grid = plan_grid("EPSG:3857", (-8348900, 4320300, -8346000, 4323500), 2.1)
    assert grid.width > 2 * WARP_BLOCK and grid.height > 2 * WARP_BLOCK
    from ray_render.geometry import bounds_polygon

    aoi = bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").buffer(-300)
    outputs = []
    for size in (256, 1024, max(grid.width, grid.height)):
        path = tmp_path / f"t{size}.tif"
        render(tree_of(scene, aoi, "EPSG:3857"), grid, path, RenderOptions(tile_size=size, resampling=resampling))
        with rasterio.open(path) as out:
            outputs.append(out.read())
    assert (outputs[0] > 0).mean() > 0.3
    for other in outputs[1:]:
        assert np.array_equal(outputs[0], other)


def test_a_tile_that_cannot_read_its_scene_fails_with_a_plain_message_and_no_file(ray_cluster, scene, tmp_path):
    gone = scene.model_copy(update={"bands": [b.model_copy(update={"uri": str(tmp_path / "gone.tif")}) for b in scene.bands]})
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    from models.errors import SceneReadError

    with pytest.raises(SceneReadError) as info:
        render(tree_of(gone), grid, tmp_path / "out" / "x.tif", RenderOptions(tile_size=256))
    message = str(info.value)
    assert message.startswith("scene big: cannot open") and "gone.tif" in message
    assert "\x1b[" not in message and "Traceback" not in message
    assert list((tmp_path / "out").iterdir()) == []  # no final, partial or working file left behind


def tile_actor_processes() -> list:
    import psutil

    return [p for p in psutil.process_iter(["cmdline"]) if any("ray::TileActor" in part for part in p.info["cmdline"] or [])]


def test_a_tile_actor_killed_mid_render_costs_nothing_but_a_retry(ray_cluster, scene, tmp_path):
    import os
    import signal

    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    killed = []

    def kill_one_actor(done, total):
        if done == 3 and not killed:
            victims = tile_actor_processes()
            assert victims, "no tile actor processes found"
            os.kill(victims[0].pid, signal.SIGKILL)  # the worker process dies, with its tiles in flight
            killed.append(victims[0].pid)

    result = render(tree_of(scene), grid, tmp_path / "out.tif", RenderOptions(tile_size=32, in_flight_per_actor=2),
                    on_progress=kill_one_actor)
    assert killed and result.tiles == 100
    with rasterio.open(tmp_path / "out.tif") as out, rasterio.open(scene.bands[0].uri) as src:
        assert (out.read() == src.read()).all()  # every tile arrived, none twice wrong


def test_tile_actors_carry_readable_names_and_count_what_they_read(ray_cluster, scene, tmp_path):
    import ray

    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    seen = {}

    def look(done, total):
        if done == total:
            names = [n["name"] if isinstance(n, dict) else n for n in ray.util.list_named_actors()]
            seen["names"] = sorted(n for n in names if n.startswith("tile-export-42-"))
            seen["read"] = sum(ray.get(ray.get_actor(n).stats.remote())["bytes_read"] for n in seen["names"])

    render(tree_of(scene), grid, tmp_path / "out.tif", RenderOptions(tile_size=100, label="export-42"), on_progress=look)
    assert len(seen["names"]) == 2 and seen["names"][0].endswith("-0")  # one per CPU of the test cluster
    assert seen["read"] == 300 * 300 * 3 * 2  # every source pixel of the three uint16 bands, read once
    import time

    deadline = time.monotonic() + 10
    while [n for n in ray.util.list_named_actors() if str(n).startswith("tile-export-42-")]:  # killed afterwards
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_overviews_made_in_the_actors_equal_those_gdal_builds(ray_cluster, scene, tmp_path):
    # Odd sides at full resolution, so overview pixels straddle tiles with fractional weights.
    grid = plan_grid("EPSG:3857", (-8348900, 4320300, -8346000, 4323500), 2.9)
    assert grid.width % 2 and grid.height % 2
    from ray_render.geometry import bounds_polygon

    aoi = bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").buffer(-300)
    path = tmp_path / "ours.tif"
    render(tree_of(scene, aoi, "EPSG:3857"), grid, path, RenderOptions(tile_size=256, cog=CogOptions(blocksize=128)))
    assert cog_validate(str(path))[0]
    assert not list(tmp_path.glob("*.blocks"))  # the actors' spill files are gone
    rasterio.shutil.copy(path, tmp_path / "gdal.tif", driver="COG", blocksize=128, overview_resampling="AVERAGE")
    with rasterio.open(path) as ours:
        levels = len(ours.overviews(1))
        assert levels >= 2 and ours.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    for level in range(levels):
        with rasterio.open(path, overview_level=level) as a, rasterio.open(tmp_path / "gdal.tif", overview_level=level) as b:
            assert np.array_equal(a.read(), b.read())
