"""Drive one render: plan tiles, fan them out to a pool of tile actors, and have the COGs written.

A render writes one COG, or several shards: windows of one output grid, each its own COG, rendered by one
actor pool in turn. Lossless COGs are made in the actors themselves (`cog_render`: each pixel is encoded once,
where it was rendered, and the driver only assembles bytes); shards of those go into their package straight
from the blocks (`package_writer`), with no shard file in between. JPEG and WEBP COGs, whose validity travels in a
mask GDAL builds, take GDAL's COG driver: actors return pixels, the driver streams them into a working file and
finishes each shard's COG on a background thread while the actors render the next shard.

In-flight work is bounded (`ray.wait`), the tree is put in the object store once, and the driver never holds
more than the tiles in flight.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import rasterio
import ray
from rasterio.windows import Window
from ray.exceptions import RayActorError, RayError
from shapely.geometry import box
from shapely.prepared import prep

from models.tooltree import ToolTree
from ray_render.actors import TileActor
from ray_render.cluster import cluster_cpus
from ray_render.cog_render import BlockRender, block_size, block_spec, finish_cog, make_cog, spills_for
from ray_render.geometry import coverage, shares_area
from ray_render.grid import OutputGrid, TileIndex, starts_inside, tile_windows
from ray_render.package_writer import PackageWriter
from ray_render.reader import DEFAULT_ERROR_THRESHOLD
from ray_render.remote import scene_environment
from ray_render.reserve import actor_reserve
from ray_render.results import RenderResult, Shard
from ray_render.scheduling import LOCALITY_BAND_TILES, TILE_ATTEMPTS, ActorPool, TileQueues, is_permanent, translate
from ray_render.upload import S3Output
from ray_render.writer import CogOptions, CogWriter, sha256_of

ProgressCallback = Callable[[int, int], None]
__all__ = ["RenderOptions", "RenderResult", "Shard", "TileQueues", "plan_tiles", "render", "render_shards"]


@dataclass(frozen=True)
class RenderOptions:
    """Tuning knobs of one render."""

    tile_size: int = 1024
    pool_size: int = 0  # 0: one actor per cluster CPU
    in_flight_per_actor: int = 2
    resampling: str = "nearest"
    gdal_cache_mb: int = 128
    # Largest reprojection error allowed, in output pixels (gdalwarp -et); 0 means the exact transformer.
    warp_error_threshold: float = DEFAULT_ERROR_THRESHOLD
    cog: CogOptions = field(default_factory=CogOptions)
    # Names the render's actors (tile-<label>-<n>) and tags its metrics, e.g. "export-7".
    label: str = "render"


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
           on_progress: ProgressCallback | None = None, upload: S3Output | None = None) -> RenderResult:
    """Render `tree` onto `grid` into a COG at `path`, calling `on_progress(done, total)` per tile.

    With `upload`, a COG the actors write themselves goes straight to that S3 object instead (the result's path
    is its s3:// URI); a COG that GDAL's driver writes (lossy codecs) or one without data is still written at
    `path`, for the caller to publish.
    """
    whole = Shard("all", Window(0, 0, grid.width, grid.height), Path(path))
    results = render_shards(tree, grid, [whole], options, on_progress, upload)
    return results[0] if results else _all_nodata(tree, grid, whole, options)


def render_shards(tree: ToolTree, grid: OutputGrid, shards: list[Shard], options: RenderOptions = RenderOptions(),
                  on_progress: ProgressCallback | None = None, upload: S3Output | None = None,
                  archive: PackageWriter | None = None) -> list[RenderResult]:
    """Render `tree` onto `grid`, each shard (a window of it, a multiple of the tile size) into its own COG.

    Shards without a tile worth rendering write no file and have no result. Either every shard's COG
    appears or, on error, none of this render's working files remain. `upload` (one shard only) sends the COG
    to S3 from the actors (`render`). With `archive` (COGs the actors write), the COGs are written nowhere but
    into its package, straight from their blocks (`package_writer`); their results name them by file name.
    """
    started = time.perf_counter()
    planned = plan_tiles(tree, grid, options.tile_size)
    by_shard = _tiles_by_shard(planned, shards)
    tiles = [tile for shard in shards for tile in by_shard.get(shard.name, [])]
    if on_progress:
        on_progress(0, len(tiles))
    if not tiles:
        return []
    cog = cog_options(tree, options.cog)
    blocksize = block_size(cog, options.tile_size)
    output = tree.root
    blocks = {}
    upload = upload if blocksize is not None else None
    if archive is not None and blocksize is None:
        raise ValueError("a package is written from the actors' blocks: GDAL's COG driver writes these shards")
    remote = upload is not None or (archive is not None and archive.uploads)
    spills = _node_spills() if remote else spills_for(shards)
    if blocksize is not None:
        spec = block_spec(cog, blocksize, output.dtype, output.nodata, tree.is_rgba())
        for shard in shards:
            Path(shard.path).parent.mkdir(parents=True, exist_ok=True)
        # Uploading actors spill on their own nodes; otherwise the driver must read the spills (its node only).
        spill_node = None if remote else ray.get_runtime_context().get_node_id()
        blocks = dict(blocks=spec, spill_to=str(spills), spill_node=spill_node)
    pool = _start_pool(tree, grid, options, min(options.pool_size or cluster_cpus(), len(tiles)), blocks)
    # Neighbouring tiles on one actor: halos reuse its warped blocks, overviews find their pixels local.
    bands = LOCALITY_BAND_TILES if tree.halo() or blocksize is not None else None
    queues = TileQueues(tiles, len(pool.actors), bands)
    went_well = False
    try:
        if blocksize is not None:
            results = _render_blocks(tree, grid, shards, by_shard, queues, pool, options, spec, spills, on_progress,
                                     upload, archive)
        else:
            results = _render_with_gdal(tree, grid, shards, by_shard, queues, pool, options, cog, on_progress)
        went_well = True
    except RayError as exc:
        raise translate(exc) from None
    finally:
        pool.finish(went_well)  # spill files dropped on every node; what dead actors left on this one goes below
        if blocksize is not None:  # after the actors have ended or are gone: none can spill into it again
            shutil.rmtree(spills, ignore_errors=True)
    seconds = round(time.perf_counter() - started, 3)
    return [replace(result, seconds=seconds) for result in results]


def _start_pool(tree: ToolTree, grid: OutputGrid, options: RenderOptions, size: int, blocks: dict) -> ActorPool:
    """`size` tile actors for this render, each holding the tree and grid (put in the object store once): kept
    ones from this process's reserve when it keeps one (`ray_render.reserve`), new ones for the rest."""
    tree_ref = ray.put(tree.to_json())
    grid_dict = grid.to_dict()
    environment = scene_environment()  # read here, where the render starts, and given to every actor
    names = itertools.count()
    run = uuid.uuid4().hex[:6]  # two renders of one label (a retry while the old run dies) must not clash
    reserve = actor_reserve()
    kind = _actor_kind(options.gdal_cache_mb, environment)

    def begun(actor, name: str):
        actor.begin.remote(tree_ref, grid_dict, options.resampling, options.label, options.warp_error_threshold,
                           name=name, **blocks)
        return actor

    def make_actor():
        # Readable in the Ray dashboard's actor list; an actor kept for other renders is named for none.
        name = f"tile-{'kept' if reserve else options.label}-{run}-{next(names)}"
        return begun(_new_actor(name, options.gdal_cache_mb, environment), name)

    size = max(1, size)
    kept = reserve.take(size, kind) if reserve else []
    actors = [begun(actor, f"tile-{options.label}-{run}-{next(names)}") for actor in kept]
    actors += [make_actor() for _ in range(size - len(kept))]
    return ActorPool(actors, make_actor, reserve, kind)


def prestart_actors(count: int, gdal_cache_mb: int, wait: bool = False) -> int:
    """Start `count` tile actors into this process's reserve (`ray_render.reserve`), so that its first render
    finds them running too; returns how many were started (none when the process keeps no reserve). With `wait`,
    returns once every one has started (1-2 s): a benchmark of warm renders must not time their start-up."""
    reserve = actor_reserve()
    if reserve is None or count <= 0:
        return 0
    environment = scene_environment()
    run = uuid.uuid4().hex[:6]
    actors = [_new_actor(f"tile-kept-{run}-{i}", gdal_cache_mb, environment) for i in range(count)]
    reserve.add(actors, _actor_kind(gdal_cache_mb, environment))
    if wait:
        ray.get([actor.node.remote() for actor in actors])
    return count


def _new_actor(name: str, gdal_cache_mb: int, environment: dict[str, str]):
    """A new tile actor, named `name` in Ray, not yet told what to render."""
    return TileActor.options(name=name).remote(gdal_cache_mb, environment)


def _actor_kind(gdal_cache_mb: int, environment: dict[str, str]) -> tuple:
    """What an actor's worker keeps for good: only actors made alike serve another render."""
    return gdal_cache_mb, tuple(sorted(environment.items()))


def _node_spills() -> Path:
    """A spill directory for a render whose actors upload its COG: the same temporary path on every node."""
    return Path(tempfile.gettempdir()) / "geoship-spills" / uuid.uuid4().hex


def _render_blocks(tree, grid, shards, by_shard, queues, pool, options, spec, spills, on_progress,
                   upload, archive) -> list[RenderResult]:
    """The actors make every block; the driver assembles each COG as its last block lands (or the actors
    upload it)."""
    output = tree.root
    cogs = {}
    cog_of = {}
    for shard in shards:
        found = by_shard.get(shard.name)
        if not found:
            continue
        row0, col0 = int(shard.window.row_off) // options.tile_size, int(shard.window.col_off) // options.tile_size
        cogs[shard.name] = make_cog(shard, grid, [(i.row - row0, i.col - col0) for i, _ in found], options.tile_size,
                                    spec, output.output_bands())
        cog_of.update({(i.row, i.col): shard.name for i, _ in found})
    driver = BlockRender(pool, queues, cogs, cog_of, options.tile_size, options.in_flight_per_actor,
                         output.output_bands(), output.dtype, spills, on_progress, upload, archive)
    try:
        return driver.run()
    except BaseException:
        for future in driver.finishing.values():
            _remove_result(future)
        raise


def _all_nodata(tree: ToolTree, grid: OutputGrid, shard: Shard, options: RenderOptions) -> RenderResult:
    """The COG of an output where no tile has data: all nodata (every block sparse), and still a valid COG."""
    started = time.perf_counter()
    output = tree.root
    cog = cog_options(tree, options.cog)
    blocksize = block_size(cog, options.tile_size)
    if blocksize is not None:
        spec = block_spec(cog, blocksize, output.dtype, output.nodata, tree.is_rgba())
        empty = make_cog(shard, grid, [], options.tile_size, spec, output.output_bands())
        empty.started = started
        return finish_cog(empty, output.output_bands(), output.dtype, spills_for([shard]))
    writer = CogWriter(Path(shard.path), grid, len(output.output_bands()), output.dtype, output.nodata,
                       output.output_bands(), cog, alpha=tree.is_rgba()).open()
    return _finish(writer, shard, output, 0, started)


def _render_with_gdal(tree, grid, shards, by_shard, queues, pool, options, cog, on_progress) -> list[RenderResult]:
    """Actors return pixels; the driver writes each shard's working file and has GDAL's COG driver finish it."""
    output = tree.root
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
            _fan_out(pool, queues, write, options.in_flight_per_actor, on_progress)
            return [finishing[shard.name].result() for shard in shards if shard.name in finishing]
    except BaseException:
        _abandon(writers, finishing)
        raise
    finally:
        finisher.shutdown(wait=True)


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
        _remove_result(future)


def _remove_result(future: Future) -> None:
    """Remove a shard's COG that finished before the render failed."""
    try:
        Path(future.result().path).unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - a shard that failed to finish left nothing under its name
        pass


def _fan_out(pool: ActorPool, queues: TileQueues, write: Callable[[tuple[int, int], Window], Callable], per_actor: int,
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
            if is_permanent(exc) or tries[key] >= attempts:
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
