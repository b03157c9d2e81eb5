"""The block render under failure: the pixels a tile actor held for the overviews are made again when it dies,
and the COG is the one an undisturbed render makes, at every level."""

import os
import signal

import numpy as np
import rasterio
import ray

from ray_render import cog_render
from ray_render.grid import plan_grid
from ray_render.render import RenderOptions, render
from ray_render.writer import CogOptions
from tests.ray_render.test_render import tile_actor_processes, tree_of

# Blocks of 128 written by the actors; 1,200 px at 2.5 m over the 300 px scene: 100 tiles, overview levels of
# 600, 300, 150 and 75 px, so that blocks of level 1 and 2 are made from pieces of several actors.
OPTIONS = RenderOptions(tile_size=128, cog=CogOptions(blocksize=128), in_flight_per_actor=2)
GRID = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 2.5)


def every_level(path) -> list[np.ndarray]:
    with rasterio.open(path) as cog:
        count = len(cog.overviews(1))
    levels = []
    for level in [None, *range(count)]:
        with rasterio.open(path, **({} if level is None else {"overview_level": level})) as data:
            levels.append(data.read())
    return levels


def assert_same_cog(path, reference, scene):
    found, expected = every_level(path), every_level(reference)
    assert len(found) == len(expected) == 5
    for mine, theirs in zip(found, expected, strict=True):
        assert np.array_equal(mine, theirs)
    with rasterio.open(scene.bands[0].uri) as src:  # 10 m source pixels, each 4 x 4 output pixels
        assert np.array_equal(found[0], np.repeat(np.repeat(src.read(), 4, axis=1), 4, axis=2))


def test_an_actor_killed_mid_render_has_its_pixels_made_again(ray_cluster, scene, tmp_path):
    reference = render(tree_of(scene), GRID, tmp_path / "undisturbed.tif", OPTIONS)
    killed = []

    def kill_one_actor(done, total):
        if done == 40 and not killed:
            victim = tile_actor_processes()[0]
            os.kill(victim.pid, signal.SIGKILL)  # with the tiles it holds for overviews not yet made
            killed.append(victim.pid)

    result = render(tree_of(scene), GRID, tmp_path / "out.tif", OPTIONS, on_progress=kill_one_actor)
    assert killed and result.tiles == reference.tiles == 100
    assert_same_cog(tmp_path / "out.tif", tmp_path / "undisturbed.tif", scene)


def test_an_overview_block_lost_with_its_actor_is_made_again_from_tiles_made_again(ray_cluster, scene, tmp_path,
                                                                                  monkeypatch):
    render(tree_of(scene), GRID, tmp_path / "undisturbed.tif", OPTIONS)
    killed, remade = [], []
    made, remake = cog_render.BlockRender._made, cog_render.BlockRender._remake

    def kill_after_first_level_one_block(self, holder, job, blocks, node):
        made(self, holder, job, blocks, node)
        if job.reduction is not None and job.reduction.key[0] == 1 and holder is not None and not killed:
            # Its pieces (tiles) are let go once it is made: made again, it needs them made again too.
            ray.kill(self.pool.actors[holder], no_restart=True)
            killed.append(job.reduction.key)

    def record(self, key):
        remade.append(key[1])
        remake(self, key)

    monkeypatch.setattr(cog_render.BlockRender, "_made", kill_after_first_level_one_block)
    monkeypatch.setattr(cog_render.BlockRender, "_remake", record)
    render(tree_of(scene), GRID, tmp_path / "out.tif", OPTIONS)
    assert killed[0] in remade  # the lost block, made again for the level above
    assert [unit for unit in remade if unit[0] == 0]  # from its tiles, made again
    assert_same_cog(tmp_path / "out.tif", tmp_path / "undisturbed.tif", scene)


def test_an_answer_read_after_its_actor_was_replaced_holds_nothing(ray_cluster, scene, tmp_path, monkeypatch):
    # An actor can answer and then die before the driver reads the answer: its blocks are stored, but the pixels
    # it held are gone, and the actor now at its place in the pool does not hold them.
    render(tree_of(scene), GRID, tmp_path / "undisturbed.tif", OPTIONS)
    land, replaced = cog_render.BlockRender._land, []

    def replace_before_reading(self, ref):
        actor, job, _ = self._pending[ref]
        if job.tile is not None and self._done == 30 and not replaced:
            self.pool.replace(actor)  # as when another of its calls has failed first
            self._holdings.lose(actor)
            replaced.append(job.tile)
        land(self, ref)

    monkeypatch.setattr(cog_render.BlockRender, "_land", replace_before_reading)
    result = render(tree_of(scene), GRID, tmp_path / "out.tif", OPTIONS)
    assert replaced and result.tiles == 100
    assert_same_cog(tmp_path / "out.tif", tmp_path / "undisturbed.tif", scene)
