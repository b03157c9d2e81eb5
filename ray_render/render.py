"""Drive one render: plan tiles, fan them out to a pool of tile actors, stream results to the writers.

In-flight work is bounded (`ray.wait`), the tree is put in the object store once, actors return only
their tile's pixels, and the driver never holds more than the tiles in flight.

A render writes one COG, or several shards: windows of one output grid, each its own COG, rendered by one
actor pool in turn. A shard's COG is finished (overviews, compression) on a background thread while the
actors render the next shard.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import rasterio
import ray
from rasterio.windows import Window
from ray.exceptions import RayActorError, RayError, RayTaskError
from shapely.geometry import box
from shapely.prepared import prep

from models.errors import GeoshipError, PermanentError, RenderError
from models.tooltree import ToolTree
from ray_render.actors import TileActor
from ray_render.cluster import cluster_cpus
from ray_render.geometry import coverage, shares_area
from ray_render.grid import OutputGrid, TileIndex, starts_inside, tile_windows
from ray_render.reader import DEFAULT_ERROR_THRESHOLD
from ray_render.writer import CogOptions, CogWriter, sha256_of

ProgressCallback = Callable[[int, int], None]
# Tries per tile: a tile whose actor dies or whose read fails transiently gets this many chances in all.
TILE_ATTEMPTS = 3
# A tree with a halo has its tiles dealt to actors in bands this many tiles wide, row by row within a band.
# Each tile's halo reaches into the warp blocks of its neighbours; GDAL warps whole blocks and caches them
# per actor, so an actor that renders the neighbours too finds them warped already (bench/RESULTS.md).
LOCALITY_BAND_TILES = 8


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
class Shard:
    """One file of a render: a window of the output grid and where its COG goes."""

    name: str
    window: Window
    path: Path


@dataclass(frozen=True)
class RenderResult:
    """What was written: where, how big, its checksum, its place in the output grid, the tiles it took."""

    path: str
    bytes: int
    sha256: str
    width: int
    height: int
    bands: list[str]
    dtype: str
    tiles: int
    seconds: float
    name: str = "all"
    col_off: int = 0
    row_off: int = 0


def plan_tiles(tree: ToolTree, grid: OutputGrid, tile_size: int) -> list[tuple[TileIndex, Window]]:
    """The tiles worth rendering: those sharing area with the coverage (not just an edge). Others are never read."""
    area = prep(coverage(tree, grid))
    tiles = []
    for index, window in tile_windows(grid, tile_size):
        tile = box(*grid.window_bounds(window))
        if shares_area(area, tile):
            tiles.append((index, window))
    return tiles


def cog_options(tree: ToolTree, cog: CogOptions) -> CogOptions:
    """The COG settings for this tree: overviews of classes (and of their colours) pick pixels, never average them
    (an average of class 1 and class 3 is not class 2)."""
    return replace(cog, overview_resampling="NEAREST") if tree.is_categorical() else cog


def render(tree: ToolTree, grid: OutputGrid, path: Path, options: RenderOptions = RenderOptions(),
           on_progress: ProgressCallback | None = None) -> RenderResult:
    """Render `tree` onto `grid` into a COG at `path`, calling `on_progress(done, total)` per tile."""
    whole = Shard("all", Window(0, 0, grid.width, grid.height), Path(path))
    results = render_shards(tree, grid, [whole], options, on_progress)
    if results:
        return results[0]
    # No tile has data: the output is all nodata, and still a valid COG.
    started = time.perf_counter()
    output = tree.root
    writer = CogWriter(Path(path), grid, len(output.output_bands()), output.dtype, output.nodata, output.output_bands(),
                       cog_options(tree, options.cog), alpha=tree.is_rgba()).open()
    return _finish(writer, whole, output, 0, started)


def render_shards(tree: ToolTree, grid: OutputGrid, shards: list[Shard], options: RenderOptions = RenderOptions(),
                  on_progress: ProgressCallback | None = None) -> list[RenderResult]:
    """Render `tree` onto `grid`, each shard (a window of it, a multiple of the tile size) into its own COG.

    Shards without a tile worth rendering write no file and have no result. Either every shard's COG
    appears or, on error, none of this render's working files remain.
    """
    started = time.perf_counter()
    planned = plan_tiles(tree, grid, options.tile_size)
    by_shard = _tiles_by_shard(planned, shards)
    tiles = [tile for shard in shards for tile in by_shard.get(shard.name, [])]
    total = len(tiles)
    if on_progress:
        on_progress(0, total)
    if not tiles:
        return []
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
    cog = cog_options(tree, options.cog)
    shard_of = {(index.row, index.col): shard for shard in shards for index, _ in by_shard.get(shard.name, [])}
    remaining = {name: len(found) for name, found in by_shard.items()}
    writers: dict[str, CogWriter] = {}
    finishing: dict[str, Future] = {}
    shard_started: dict[str, float] = {}

    def write(key: tuple[int, int], window: Window) -> Callable:
        shard = shard_of[key]
        if shard.name not in writers:
            shard_grid = OutputGrid(grid.crs, grid.window_transform(shard.window), int(shard.window.width),
                                    int(shard.window.height))
            writers[shard.name] = CogWriter(shard.path, shard_grid, len(output.output_bands()), output.dtype,
                                            output.nodata, output.output_bands(), cog, alpha=tree.is_rgba()).open()
            shard_started[shard.name] = time.perf_counter()

        def put(pixels) -> None:
            local = Window(window.col_off - shard.window.col_off, window.row_off - shard.window.row_off,
                           window.width, window.height)
            writers[shard.name].write(local, pixels)
            remaining[shard.name] -= 1
            if remaining[shard.name] == 0:  # the shard is complete: build its COG while the next one renders
                finishing[shard.name] = finisher.submit(_finish, writers[shard.name], shard, output,
                                                        len(by_shard[shard.name]), shard_started[shard.name])
        return put

    finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cog")
    # The driver's GDAL block cache (writing tiles, building each COG) gets the same bound as each actor's;
    # left alone it would be 5 % of the machine's memory, filled in proportion to the output's size.
    # (rasterio.Env takes GDAL_CACHEMAX in bytes, unlike GDAL's own environment variable, in MB.)
    driver_cache = rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 1024 * 1024)
    try:
        with driver_cache:
            queues = TileQueues(tiles, len(pool.actors), LOCALITY_BAND_TILES if tree.halo() else None)
            _fan_out(pool, queues, write, options.in_flight_per_actor, on_progress)
            results = [finishing[shard.name].result() for shard in shards if shard.name in finishing]
    except RayError as exc:
        _abandon(writers, finishing)
        raise _translate(exc) from None
    except BaseException:
        _abandon(writers, finishing)
        raise
    finally:
        finisher.shutdown(wait=True)
        for actor in pool.actors:
            ray.kill(actor)
    seconds = round(time.perf_counter() - started, 3)
    return [replace(result, seconds=seconds) for result in results]


def _tiles_by_shard(tiles: list[tuple[TileIndex, Window]], shards: list[Shard]) -> dict[str, list]:
    """The planned tiles of each shard; a tile must lie wholly inside one shard."""
    found: dict[str, list] = {}
    for index, window in tiles:
        for shard in shards:
            s = shard.window
            if starts_inside(window, s):
                if window.col_off + window.width > s.col_off + s.width or window.row_off + window.height > s.row_off + s.height:
                    raise ValueError(f"tile {index} straddles shard {shard.name}: shards must be multiples of the tile size")
                found.setdefault(shard.name, []).append((index, window))
                break
    return found


def _finish(writer: CogWriter, shard: Shard, output, tiles: int, started: float) -> RenderResult:
    """Close a complete shard's writer (the COG appears at its path) and describe the file."""
    writer.close()
    path = Path(shard.path)
    return RenderResult(
        path=str(path), bytes=path.stat().st_size, sha256=sha256_of(path), width=int(shard.window.width),
        height=int(shard.window.height), bands=output.output_bands(), dtype=output.dtype, tiles=tiles,
        seconds=round(time.perf_counter() - started, 3), name=shard.name, col_off=int(shard.window.col_off),
        row_off=int(shard.window.row_off),
    )


def _abandon(writers: dict[str, CogWriter], finishing: dict[str, Future]) -> None:
    """After a failure: close unfinished writers without a COG, and remove shards already finished."""
    for name, writer in writers.items():
        if name not in finishing:
            writer.close(complete=False)
    for future in finishing.values():
        try:
            Path(future.result().path).unlink(missing_ok=True)
        except Exception:  # noqa: BLE001 - a shard that failed to finish left nothing under its name
            pass


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


class TileQueues:
    """Which tile each actor renders next: one queue shared by all, or, with `band_tiles`, each actor its own
    bands of that many tile columns (dealt in turn), row by row within a band. An actor whose queue runs dry
    takes from the far end of the fullest one, so no actor idles while tiles remain."""

    def __init__(self, tiles: list[tuple[TileIndex, Window]], actors: int, band_tiles: int | None = None):
        self.tiles = tiles
        if band_tiles is None:
            self._queues = [deque(tiles)]
            return
        bands: dict[int, list] = {}
        for tile in tiles:
            bands.setdefault(tile[0].col // band_tiles, []).append(tile)
        self._queues = [deque() for _ in range(actors)]
        for n, band in enumerate(sorted(bands)):
            self._queues[n % actors].extend(sorted(bands[band], key=lambda t: (t[0].row, t[0].col)))

    def __len__(self) -> int:
        return len(self.tiles)

    def next_for(self, actor: int) -> tuple[TileIndex, Window] | None:
        """The next tile for `actor`, or None when every tile has been handed out."""
        own = self._queues[actor % len(self._queues)]
        if own:
            return own.popleft()
        fullest = max(self._queues, key=len)
        return fullest.pop() if fullest else None


def _fan_out(pool: _Pool, queues: TileQueues, write: Callable[[tuple[int, int], Window], Callable], per_actor: int,
             on_progress: ProgressCallback | None, attempts: int = TILE_ATTEMPTS) -> None:
    """Keep every actor busy with at most `per_actor` tiles, writing each result as it lands.

    `write(key, window)` is called when a tile is first sent and returns the function that takes its pixels.

    A tile that fails for a transient reason (its actor died, a read failed) is tried again on another actor,
    up to `attempts` times in all; a permanent error (bad input) ends the render at once.
    """
    windows = {(i.row, i.col): w for i, w in queues.tiles}
    sinks: dict[tuple[int, int], Callable] = {}
    pending: dict = {}  # object ref -> (actor index, tile key)
    tries: dict[tuple[int, int], int] = {}

    def send(actor_index: int, key: tuple[int, int]) -> None:
        w = windows[key]
        ref = pool.actors[actor_index].render.remote(key, (w.col_off, w.row_off, w.width, w.height))
        pending[ref] = (actor_index, key)
        if key not in sinks:
            sinks[key] = write(key, w)
        tries[key] = tries.get(key, 0) + 1

    def submit(actor_index: int) -> None:
        nxt = queues.next_for(actor_index)
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
        sinks.pop(key)(pixels)
        done += 1
        if on_progress:
            on_progress(done, len(queues))
        submit(actor_index)
