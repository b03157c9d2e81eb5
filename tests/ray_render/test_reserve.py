"""Tile actors kept between renders (`geoship worker`): the next render runs on the same worker processes and
makes exactly what new actors make; a render that fails, an actor idle too long or one that has served its
renders is ended."""


import numpy as np
import psutil
import pytest
import rasterio
import ray

from models.errors import SceneReadError
from ray_render.grid import plan_grid
from ray_render.render import RenderOptions, prestart_actors, render
from ray_render.reserve import ActorReserve, actor_reserve, keep_actors, stop_keeping_actors
from tests.ray_render.test_render import tree_of

pytestmark = pytest.mark.usefixtures("ray_cluster")

GRID = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
# Another job for the same actors: another grid, CRS and resampling.
OTHER_GRID = plan_grid("EPSG:3857", (-8348900, 4320300, -8346000, 4323500), 7.3)


def tile_actor_pids() -> set[int]:
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if any("ray::TileActor" in part for part in p.info["cmdline"] or [])}


def pixels(path) -> np.ndarray:
    with rasterio.open(path) as out:
        return out.read()


@pytest.fixture
def reserve():
    yield keep_actors(idle_seconds=60)
    stop_keeping_actors()


def test_the_next_render_runs_on_the_kept_actors_and_makes_what_new_actors_make(scene, tmp_path):
    options = RenderOptions(tile_size=128)
    render(tree_of(scene), GRID, tmp_path / "fresh-a.tif", options)
    render(tree_of(scene), OTHER_GRID, tmp_path / "fresh-b.tif", RenderOptions(tile_size=256, resampling="bilinear"))
    before = tile_actor_pids()

    reserve = keep_actors(idle_seconds=60)
    try:
        render(tree_of(scene), GRID, tmp_path / "kept-a.tif", options)
        kept = tile_actor_pids()
        assert reserve.idle == 2 and len(kept - before) == 2  # made for the first render, then kept
        render(tree_of(scene), OTHER_GRID, tmp_path / "kept-b.tif", RenderOptions(tile_size=256, resampling="bilinear"))
        assert tile_actor_pids() == kept and reserve.idle == 2  # the same two processes rendered it
    finally:
        stop_keeping_actors()
    assert np.array_equal(pixels(tmp_path / "kept-a.tif"), pixels(tmp_path / "fresh-a.tif"))
    assert np.array_equal(pixels(tmp_path / "kept-b.tif"), pixels(tmp_path / "fresh-b.tif"))
    assert (pixels(tmp_path / "kept-b.tif") > 0).mean() > 0.3
    assert actor_reserve() is None


def test_actors_started_ahead_serve_the_first_render(reserve, scene, tmp_path):
    before = tile_actor_pids()
    assert prestart_actors(2, RenderOptions().gdal_cache_mb, wait=True) == 2 and reserve.idle == 2
    started = tile_actor_pids()
    assert len(started - before) == 2  # both running when it returns, before any render asks for them

    render(tree_of(scene), GRID, tmp_path / "out.tif", RenderOptions(tile_size=128))

    assert tile_actor_pids() == started and reserve.idle == 2  # no actor was made for the render
    with rasterio.open(tmp_path / "out.tif") as out, rasterio.open(scene.bands[0].uri) as src:
        assert (out.read() == src.read()).all()


def test_a_render_that_fails_ends_its_actors_and_the_next_one_starts_afresh(reserve, scene, tmp_path):
    render(tree_of(scene), GRID, tmp_path / "first.tif", RenderOptions(tile_size=128))
    assert reserve.idle == 2
    gone = scene.model_copy(update={"bands": [b.model_copy(update={"uri": str(tmp_path / "gone.tif")})
                                              for b in scene.bands]})
    with pytest.raises(SceneReadError):
        render(tree_of(gone), GRID, tmp_path / "x.tif", RenderOptions(tile_size=128))
    assert reserve.idle == 0  # the failed render's actors (the kept ones) were ended, not kept
    render(tree_of(scene), GRID, tmp_path / "again.tif", RenderOptions(tile_size=128))
    assert np.array_equal(pixels(tmp_path / "again.tif"), pixels(tmp_path / "first.tif"))


def test_idle_and_spent_actors_are_ended():
    @ray.remote(num_cpus=0)
    class Idle:
        def ping(self):
            return 1

    now = [0.0]
    reserve = ActorReserve(idle_seconds=10, max_renders=2, clock=lambda: now[0])
    old, spent, fresh = Idle.remote(), Idle.remote(), Idle.remote()
    reserve.give_back([old], "kind")  # each after its first render
    now[0] = 8.0
    reserve.give_back([spent], "kind")
    assert reserve.take(5, "other kind") == []  # made otherwise: never lent
    assert reserve.take(1, "kind") == [spent]  # the most recently used first
    reserve.give_back([spent], "kind")  # its second render: spent, ended
    now[0] = 30.0
    reserve.give_back([fresh], "kind")
    assert reserve.expire() == 1 and reserve.idle == 1  # `old`, idle for 30 s
    assert ray.get(fresh.ping.remote()) == 1
    for actor in (old, spent):
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.ping.remote(), timeout=30)
    reserve.clear()
