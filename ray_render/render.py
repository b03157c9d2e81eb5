"""Drive one render: plan tiles, fan them out to a pool of tile actors, stream results to the writer.

In-flight work is bounded (`ray.wait`), the tree is put in the object store once, actors return only
their tile's pixels, and the driver never holds more than the tiles in flight.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ray
import shapely
from rasterio.windows import Window
from ray.exceptions import RayActorError, RayError, RayTaskError
from shapely.geometry import box, shape
from shapely.prepared import prep

from models.errors import GeoshipError, PermanentError, RenderError
from models.tooltree import Mask, ToolTree
from ray_render.actors import TileActor
from ray_render.cluster import cluster_cpus
from ray_render.geometry import bounds_polygon
from ray_render.grid import OutputGrid, TileIndex, tile_windows
from ray_render.reader import DEFAULT_ERROR_THRESHOLD
from ray_render.writer import CogOptions, CogWriter, sha256_of

ProgressCallback = Callable[[int, int], None]
# Tries per tile: a tile whose actor dies or whose read fails transiently gets this many chances in all.
TILE_ATTEMPTS = 3


@dataclass(frozen=True)
class RenderOptions:
    """Tuning knobs of one render."""

    tile_size: int = 512
    pool_size: int = 0  # 0: one actor per cluster CPU
    in_flight_per_actor: int = 2
    resampling: str = "nearest"
    gdal_cache_mb: int = 256
    # Largest reprojection error allowed, in output pixels (gdalwarp -et); 0 means the exact transformer.
    warp_error_threshold: float = DEFAULT_ERROR_THRESHOLD
    cog: CogOptions = field(default_factory=CogOptions)
    # Names the render's actors (tile-<label>-<n>) and tags its metrics, e.g. "export-7".
    label: str = "render"


@dataclass(frozen=True)
class RenderResult:
    """What was written: where, how big, its checksum, and the tiling that produced it."""

    path: str
    bytes: int
    sha256: str
    width: int
    height: int
    bands: list[str]
    dtype: str
    tiles: int
    seconds: float


def coverage(tree: ToolTree, grid: OutputGrid):
    """Where the output can have data: the AOI masks, else the union of the sources' footprints."""
    masks = tree.find(Mask)
    if masks:
        return shapely.intersection_all([shape(m.geometry) for m in masks])
    footprints = [bounds_polygon(s.bounds, s.crs, grid.crs) for src in tree.sources() for s in src.scenes]
    return shapely.union_all(footprints)


def plan_tiles(tree: ToolTree, grid: OutputGrid, tile_size: int) -> list[tuple[TileIndex, Window]]:
    """The tiles worth rendering: those sharing area with the coverage (not just an edge). Others are never read."""
    area = prep(coverage(tree, grid))
    tiles = []
    for index, window in tile_windows(grid, tile_size):
        tile = box(*grid.window_bounds(window))
        if area.intersects(tile) and not area.touches(tile):
            tiles.append((index, window))
    return tiles


def render(tree: ToolTree, grid: OutputGrid, path: Path, options: RenderOptions = RenderOptions(),
           on_progress: ProgressCallback | None = None) -> RenderResult:
    """Render `tree` onto `grid` into a COG at `path`, calling `on_progress(done, total)` per tile."""
    started = time.perf_counter()
    tiles = plan_tiles(tree, grid, options.tile_size)
    total = len(tiles)
    if on_progress:
        on_progress(0, total)
    pool_size = options.pool_size or cluster_cpus()
    pool_size = max(1, min(pool_size, total))
    tree_ref = ray.put(tree.to_json())  # shared by every actor, stored once
    grid_dict = grid.to_dict()
    names = itertools.count()
    run = uuid.uuid4().hex[:6]  # two renders of one label (a retry while the old run dies) must not clash

    def make_actor():
        name = f"tile-{options.label}-{run}-{next(names)}"  # readable in the Ray dashboard's actor list
        return TileActor.options(name=name).remote(tree_ref, grid_dict, options.resampling, options.gdal_cache_mb,
                                                   options.label, options.warp_error_threshold)

    pool = _Pool([make_actor() for _ in range(pool_size)], make_actor)
    output = tree.root
    try:
        with CogWriter(Path(path), grid, len(output.output_bands()), output.dtype, output.nodata,
                       output.output_bands(), options.cog) as writer:
            _fan_out(pool, tiles, writer, options.in_flight_per_actor, on_progress)
    except RayError as exc:
        raise _translate(exc) from None
    finally:
        for actor in pool.actors:
            ray.kill(actor)
    size = Path(path).stat().st_size
    return RenderResult(
        path=str(path), bytes=size, sha256=sha256_of(Path(path)), width=grid.width, height=grid.height,
        bands=output.output_bands(), dtype=output.dtype, tiles=total,
        seconds=round(time.perf_counter() - started, 3),
    )


def _translate(exc: RayError) -> Exception:
    """Ray's wrappers carry tracebacks and terminal colours; callers get our own error with a plain message."""
    cause = exc.cause if isinstance(exc, RayTaskError) else None
    if isinstance(cause, GeoshipError):
        return cause
    if isinstance(exc, RayActorError):
        return RenderError(f"a tile actor died while rendering: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if cause is not None:
        return RenderError(f"rendering a tile failed: {type(cause).__name__}: {cause}")
    return RenderError(f"rendering failed: {type(exc).__name__}")


def _is_permanent(exc: RayError) -> bool:
    """A tile error that retrying cannot fix: bad input, a refused request."""
    return isinstance(exc, RayTaskError) and isinstance(exc.cause, PermanentError)


class _Pool:
    """The tile actors, replacing any that die so the render keeps its width."""

    def __init__(self, actors: list, make_actor: Callable[[], object]):
        self.actors, self._make = actors, make_actor

    def replace(self, index: int) -> None:
        ray.kill(self.actors[index], no_restart=True)
        self.actors[index] = self._make()

    def other_than(self, index: int) -> int:
        """Another actor's index when there is one: a retried tile should not meet the same worker."""
        return (index + 1) % len(self.actors)


def _fan_out(pool: _Pool, tiles, writer: CogWriter, per_actor: int, on_progress: ProgressCallback | None,
             attempts: int = TILE_ATTEMPTS) -> None:
    """Keep every actor busy with at most `per_actor` tiles, writing each result as it lands.

    A tile that fails for a transient reason (its actor died, a read failed) is tried again on another actor,
    up to `attempts` times in all; a permanent error (bad input) ends the render at once.
    """
    windows = {(i.row, i.col): w for i, w in tiles}
    queue = iter(tiles)
    pending: dict = {}  # object ref -> (actor index, tile key)
    tries: dict[tuple[int, int], int] = {}

    def send(actor_index: int, key: tuple[int, int]) -> None:
        w = windows[key]
        ref = pool.actors[actor_index].render.remote(key, (w.col_off, w.row_off, w.width, w.height))
        pending[ref] = (actor_index, key)
        tries[key] = tries.get(key, 0) + 1

    def submit(actor_index: int) -> None:
        nxt = next(queue, None)
        if nxt is not None:
            send(actor_index, (nxt[0].row, nxt[0].col))

    for actor_index in range(len(pool.actors)):
        for _ in range(per_actor):
            submit(actor_index)
    done = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        actor_index, key = pending.pop(ready[0])
        try:
            _, pixels = ray.get(ready[0])
        except RayError as exc:
            if _is_permanent(exc) or tries[key] >= attempts:
                raise
            if isinstance(exc, RayActorError):
                pool.replace(actor_index)
            send(pool.other_than(actor_index), key)
            continue
        writer.write(windows[key], pixels)
        done += 1
        if on_progress:
            on_progress(done, len(tiles))
        submit(actor_index)
