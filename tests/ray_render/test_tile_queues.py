"""How tiles are dealt to actors: one shared queue, or bands of tile columns per actor for trees with a halo."""

from __future__ import annotations

from rasterio.windows import Window

from ray_render.grid import TileIndex
from ray_render.scheduling import TileQueues


def tiles(rows: int, cols: int):
    return [(TileIndex(r, c), Window(c * 10, r * 10, 10, 10)) for r in range(rows) for c in range(cols)]


def drain(queues: TileQueues, order: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Hand out every tile, asking actors in `order` (repeated), and say who got which."""
    got: dict[int, list[tuple[int, int]]] = {actor: [] for actor in set(order)}
    while True:
        for actor in order:
            tile = queues.next_for(actor)
            if tile is None:
                return got
            got[actor].append((tile[0].row, tile[0].col))


def test_a_shared_queue_hands_out_tiles_in_order():
    got = drain(TileQueues(tiles(2, 3), 2), [0, 1])
    assert got == {0: [(0, 0), (0, 2), (1, 1)], 1: [(0, 1), (1, 0), (1, 2)]}


def test_bands_keep_neighbours_with_one_actor_row_by_row():
    got = drain(TileQueues(tiles(3, 4), 2, band_tiles=2), [0, 1])
    assert got[0] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert got[1] == [(0, 2), (0, 3), (1, 2), (1, 3), (2, 2), (2, 3)]


def test_an_actor_that_runs_dry_takes_from_the_far_end_of_the_fullest_queue():
    queues = TileQueues(tiles(2, 6), 2, band_tiles=2)  # bands 0 and 2 for actor 0, band 1 for actor 1
    got = drain(queues, [0, 1, 1])  # actor 1 asks twice as often
    every = sorted(got[0] + got[1])
    assert every == sorted((r, c) for r in range(2) for c in range(6))  # each tile once
    assert got[1][:4] == [(0, 2), (0, 3), (1, 2), (1, 3)] and got[1][4] == (1, 5)  # then actor 0's last tile
    assert len(queues) == 12
