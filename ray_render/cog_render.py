"""Rendering straight into COG blocks: actors render, encode and reduce; the driver only schedules and assembles.

Each tile actor renders a tile, encodes its full-resolution blocks and spills them; the tile's pixels stay in the
actor's memory until the overview blocks above them are made (`holdings`). As soon as every input of an overview
block is made, the block is reduced by the actor holding most of its inputs (the others shared with it through Ray's
object store), level by level up to the top. Pixels lost with an actor that dies are made again. The driver sees
block positions and object references only. When every block of a COG exists, the driver writes the header and
copies the blocks into place (`blocks.assemble`), while the actors go on with the next shard; or, for a COG in
object storage, the actors upload it as the parts of one multipart upload (`upload`); or, for shards to be packaged,
every COG's blocks wait for the package to be written from them (`package_writer`). Each pixel is decoded, warped,
evaluated, reduced and encoded once.
"""

from __future__ import annotations

import pickle
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ray
from rasterio.windows import Window
from ray.exceptions import RayActorError, RayError

from models.errors import RenderError
from ray_render.blocks import BlockSpill, Layout, StoredBlock, assemble, layout, spill_dir
from ray_render.codec import COMPRESSION_TAGS, BlockCodec, predictor_for
from ray_render.encoding import BlockSpec
from ray_render.grid import OutputGrid, TileIndex
from ray_render.holdings import Holdings, Key
from ray_render.overviews import Validity
from ray_render.package_writer import MadeCog, PackageWriter
from ray_render.pyramid import Pyramid, Reduction, UnitKey
from ray_render.results import RenderResult, Shard
from ray_render.scheduling import TILE_ATTEMPTS, ActorPool, TileQueues, is_permanent
from ray_render.tiff import Profile, gdal_tags, overview_tags
from ray_render.upload import S3Output, upload_cog
from ray_render.writer import CogOptions

ProgressCallback = Callable[[int, int], None]
OVERVIEW_METHODS = {"AVERAGE": "average", "NEAREST": "nearest"}
MIN_BLOCK = 128


def block_size(cog: CogOptions, tile_size: int) -> int | None:
    """The COG block size when actors can write this COG themselves, else None (GDAL's COG driver writes it).

    Lossy codecs need GDAL (their masks), as do overview methods other than average and nearest. A tile holds
    whole blocks: the configured block size when it divides the tile, else one block per tile, if that is a
    block GDAL's COG driver would write too (a multiple of 16, at least 128).
    """
    if cog.writer != "actors" or cog.compress not in COMPRESSION_TAGS or cog.overview_resampling.upper() not in OVERVIEW_METHODS:
        return None
    if tile_size % cog.blocksize == 0:
        return cog.blocksize
    if MIN_BLOCK <= tile_size < cog.blocksize and tile_size % 16 == 0:
        return tile_size
    return None


def block_spec(cog: CogOptions, blocksize: int, dtype: str, nodata: float | None, alpha: bool) -> BlockSpec:
    """What the actors need to encode and reduce this render's blocks."""
    return BlockSpec(BlockCodec(cog.compress, dtype, blocksize, cog.level), Validity(dtype, nodata, alpha),
                     OVERVIEW_METHODS[cog.overview_resampling.upper()])


@dataclass
class _Cog:
    """One COG being made: its pyramid, its IFD tags, the blocks made so far and how many are still to come."""

    shard: Shard
    pyramid: Pyramid
    tags: list
    tiles: int
    outstanding: int
    started: float = 0.0
    blocks: dict[UnitKey, StoredBlock] = field(default_factory=dict)
    # Where its tiles were rendered, and what the driver took in for it (the pickled size of every answer the
    # actors sent: block positions and references, never pixels, unless an actor could not spill).
    nodes: dict[str, int] = field(default_factory=dict)
    received: int = 0


def make_cog(shard: Shard, grid: OutputGrid, tiles: list[tuple[int, int]], tile_size: int, spec: BlockSpec,
             band_names: list[str]) -> _Cog:
    """The plan of one COG: `tiles` are its rendered tiles' (row, col) within the shard."""
    window = shard.window
    shard_grid = OutputGrid(grid.crs, grid.window_transform(window), int(window.width), int(window.height))
    pyramid = Pyramid(shard_grid.width, shard_grid.height, tile_size, spec.codec.blocksize, tiles, spec.method)
    profile = Profile(shard_grid, len(band_names), spec.codec.dtype, spec.validity.nodata, tuple(band_names),
                      spec.codec.compress, predictor_for(spec.codec.dtype), spec.codec.blocksize, spec.validity.alpha)
    full = gdal_tags(profile)
    tags = [full] + [overview_tags(full, w, h) for w, h in pyramid.sizes[1:]]
    return _Cog(shard, pyramid, tags, len(tiles), len(tiles) + len(pyramid.reductions()))


def finish_cog(cog: _Cog, bands: list[str], dtype: str, spills: Path) -> RenderResult:
    """Assemble the COG at its path from its blocks (spilled in `spills`) and describe the file."""
    path = Path(cog.shard.path)
    sha256 = assemble(path, _layout(cog), spills)
    return _described(cog, str(path), path.stat().st_size, sha256, bands, dtype)


def upload_finished_cog(cog: _Cog, bands: list[str], dtype: str, pool: ActorPool, output: S3Output) -> RenderResult:
    """Have the actors upload the COG from their spill files to `output` and describe the object."""
    uploaded = upload_cog(pool, _layout(cog), output)
    cog.received += uploaded.received
    return _described(cog, uploaded.uri, uploaded.bytes, uploaded.sha256, bands, dtype)


def _made(cog: _Cog, bands: list[str], dtype: str) -> MadeCog:
    """A COG whose blocks all exist, for a package: described by its file name, its checksum not yet known."""
    planned = _layout(cog)
    return MadeCog(_described(cog, Path(cog.shard.path).name, planned.size, "", bands, dtype), planned)


def _layout(cog: _Cog) -> Layout:
    return layout(cog.tags, [cog.pyramid.grid(level) for level in range(cog.pyramid.levels)], cog.blocks)


def _described(cog: _Cog, where: str, size: int, sha256: str, bands: list[str], dtype: str) -> RenderResult:
    window = cog.shard.window
    return RenderResult(
        path=where, bytes=size, sha256=sha256, width=int(window.width), height=int(window.height), bands=bands,
        dtype=dtype, tiles=cog.tiles, seconds=round(time.perf_counter() - cog.started, 3), name=cog.shard.name,
        col_off=int(window.col_off), row_off=int(window.row_off), tiles_by_node=dict(cog.nodes),
        driver_bytes=cog.received,
    )


@dataclass(frozen=True)
class _Job:
    """One call to an actor: a tile to render (`tile`), an overview block to reduce (`reduction`), or a unit's
    pixels to share with another actor (`share`). A job that `remakes` only makes pixels lost with an actor again,
    for the blocks above them: its own blocks are stored already."""

    cog: str
    tile: tuple[int, int] | None = None  # the tile's (row, col) in the whole grid
    reduction: Reduction | None = None
    share: UnitKey | None = None
    remake: bool = False


class BlockRender:
    """Drives one render through the actors in `pool`, COG by COG; `run()` returns what was written."""

    def __init__(self, pool: ActorPool, queues: TileQueues, cogs: dict[str, _Cog], cog_of: dict[tuple[int, int], str],
                 tile_size: int, per_actor: int, bands: list[str], dtype: str, spills: Path,
                 on_progress: ProgressCallback | None = None, upload: S3Output | None = None,
                 archive: PackageWriter | None = None):
        self.pool, self.queues, self.cogs, self.cog_of = pool, queues, cogs, cog_of
        self.tile_size, self.per_actor, self.bands, self.dtype = tile_size, per_actor, bands, dtype
        self.on_progress, self.upload, self.archive = on_progress, upload, archive
        if upload is not None and len(cogs) > 1:
            raise ValueError("only a render of one COG uploads it from the actors; shards go into a package")
        self._spills = spills
        self._driver_spill: BlockSpill | None = None
        self._windows = {(i.row, i.col): w for i, w in queues.tiles}
        self._pending: dict = {}  # answer ref -> (actor index, job, the actor's handle when sent)
        self._holdings = Holdings()  # where the pixels an overview block still needs are
        self._sharing: dict[Key, object] = {}  # pixels being shared: the reference the share will fill
        self._deferred: list[_Job] = []  # reductions waiting for pieces to be shared or made again
        self._remaking: set[Key] = set()
        self._remake_readers: Counter = Counter()  # pieces read by reductions that make lost pixels again
        self._tries: dict[_Job, int] = {}
        self._tiles_in_flight = [0] * len(pool.actors)
        self._node_of: dict[int, str] = {}  # each actor's node, from its answers
        self._finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cog")
        self.finishing: dict[str, Future] = {}
        self._done = 0

    def run(self) -> list[RenderResult]:
        try:
            for actor in range(len(self.pool.actors)):
                self._feed(actor)
            while self._pending:
                ready, _ = ray.wait(list(self._pending), num_returns=1)
                self._land(ready[0])
            if self._deferred:  # every reduction waits on a call in flight: none may be left behind
                raise RenderError(f"{len(self._deferred)} overview blocks were never made")
            if self.archive is not None:  # every COG's blocks exist: the package is written from them
                made = [_made(cog, self.bands, self.dtype) for cog in self.cogs.values()]
                return self.archive.write(made, self.pool, self._spills)
            return [self.finishing[name].result() for name in self.cogs if name in self.finishing]
        finally:
            self._finisher.shutdown(wait=True)
            if self._driver_spill is not None:
                self._driver_spill.close()

    def _feed(self, actor: int) -> None:
        """Keep `per_actor` tiles in flight on `actor` while tiles remain."""
        while self._tiles_in_flight[actor] < self.per_actor:
            nxt = self.queues.next_for(actor)
            if nxt is None:
                return
            index: TileIndex = nxt[0]
            self._send(actor, _Job(self.cog_of[(index.row, index.col)], tile=(index.row, index.col)))

    def _send(self, actor: int, job: _Job) -> None:
        cog = self.cogs[job.cog]
        handle = self.pool.actors[actor]
        if job.tile is not None:
            drop = self._holdings.drops_for(actor)
            local = self._local(cog, job.tile)
            w: Window = self._windows[job.tile]
            hold = (job.cog, (0, *local)) if cog.pyramid.needed((0, *local)) else None
            meta = handle.render_blocks.remote(local, (w.col_off, w.row_off, w.width, w.height), self.tile_size, hold,
                                               not job.remake, drop)
            self._tiles_in_flight[actor] += 1
            if not cog.started:
                cog.started = time.perf_counter()
        elif job.share is not None:
            # No drops with a share: it runs beside the actor's queue, and a drop must not overtake a call sent
            # before it (a unit made again after it was let go would be dropped).
            meta, self._sharing[(job.cog, job.share)] = handle.share.remote((job.cog, job.share))
        else:
            drop = self._holdings.drops_for(actor)
            keys = [(job.cog, piece.unit) for piece in job.reduction.pieces]
            local = [key if self._holdings.holder(key) == actor else None for key in keys]
            shared = [self._holdings.shared[key] for key, here in zip(keys, local, strict=True) if here is None]
            hold = (job.cog, job.reduction.key) if cog.pyramid.needed(job.reduction.key) else None
            meta = handle.reduce.remote(job.reduction, hold, not job.remake, drop, local, *shared)
        self._pending[meta] = (actor, job, handle)
        self._tries[job] = self._tries.get(job, 0) + 1

    def _reduce(self, job: _Job) -> None:
        """Send a reduction once every piece can be read where it goes: pieces lost with an actor are made again
        first, pieces held by an actor other than the reducer are shared first; until then it waits."""
        keys = [(job.cog, piece.unit) for piece in job.reduction.pieces]
        missing = [key for key in keys if not self._holdings.available(key)]
        for key in missing:
            self._remake(key)
        actor = self._reducer(keys)
        elsewhere = [key for key in keys if key not in self._holdings.shared
                     and self._holdings.holder(key) not in (None, actor)]
        for key in elsewhere:
            self._share(key)
        if missing or elsewhere:
            self._deferred.append(job)
        else:
            self._send(actor, job)

    def _share(self, key: Key) -> None:
        if key not in self._sharing:
            self._send(self._holdings.holder(key), _Job(key[0], share=key[1]))

    def _remake(self, key: Key) -> None:
        """Make a unit's pixels again (they were lost with an actor): a tile is rendered again, an overview block
        reduced again from its pieces, themselves made again if they are gone too."""
        if key in self._remaking:
            return
        self._remaking.add(key)
        name, (level, row, col) = key
        if level == 0:
            self._send(self._least_queued(), _Job(name, tile=self._global(self.cogs[name], (row, col)), remake=True))
            return
        reduction = self.cogs[name].pyramid.reduction((level, row, col))
        self._remake_readers.update((name, piece.unit) for piece in reduction.pieces)
        self._reduce(_Job(name, reduction=reduction, remake=True))

    def _land(self, ref) -> None:
        actor, job, handle = self._pending.pop(ref)
        if job.tile is not None:
            self._tiles_in_flight[actor] -= 1
        try:
            answer = ray.get(ref)
        except RayError as exc:
            self._failed(actor, job, handle, exc)
            return
        cog = self.cogs[job.cog]
        cog.received += len(pickle.dumps(answer))
        # An answer read after its actor died and was replaced: its blocks are stored, its pixels gone with it.
        holder = actor if self.pool.actors[actor] is handle else None
        if job.share is not None:  # a shared copy outlives its maker: the driver owns it
            self._holdings.shared[(job.cog, job.share)] = self._sharing.pop((job.cog, job.share))
        else:
            made, node = answer
            if holder is not None:
                self._node_of[actor] = node
            if job.remake:
                self._remade(holder, job)
            else:
                self._made(holder, job, made, node)
        self._retry_deferred()
        self._feed(actor)

    def _failed(self, actor: int, job: _Job, handle, exc: RayError) -> None:
        """A call failed: a dead actor is replaced (once, whichever of its calls fails first) and its pixels are
        lost; the job is tried again elsewhere, up to TILE_ATTEMPTS times, unless retrying cannot help."""
        if is_permanent(exc):
            raise exc
        if isinstance(exc, RayActorError) and self.pool.actors[actor] is handle:
            self.pool.replace(actor)
            self._holdings.lose(actor)
        if job.share is not None:
            self._sharing.pop((job.cog, job.share))
            if not isinstance(exc, RayActorError):
                raise exc
            self._retry_deferred()  # its readers find the pixels lost now, and have them made again
            return
        if self._tries[job] >= TILE_ATTEMPTS:
            raise exc
        if job.reduction is not None:
            self._reduce(job)
        else:
            self._send(self.pool.other_than(actor), job)
        self._retry_deferred()

    def _made(self, holder: int | None, job: _Job, made: dict, node: str) -> None:
        """A unit landed for the first time: its blocks are stored, its pixels held by `holder` (None: by no one,
        its actor died since), the blocks it completes sent."""
        cog = self.cogs[job.cog]
        for key, block in made.items():
            cog.blocks[key] = block if isinstance(block, StoredBlock) else self._spill_here(block)
        unit = self._unit(job)
        if job.tile is not None:
            cog.nodes[node] = cog.nodes.get(node, 0) + 1
            self._done += 1
            if self.on_progress:
                self.on_progress(self._done, len(self.queues))
        else:
            for released in cog.pyramid.reduced(job.reduction):
                self._release((job.cog, released))
        if cog.pyramid.needed(unit) and holder is not None:
            self._holdings.hold((job.cog, unit), holder)
        for reduction in cog.pyramid.finished(unit):
            self._reduce(_Job(job.cog, reduction=reduction))
        cog.outstanding -= 1
        if cog.outstanding == 0 and self.upload is not None:  # the last unit of the only COG: the actors are free
            finished = Future()  # kept only once it holds the result: a failed upload has nothing to remove
            finished.set_result(upload_finished_cog(cog, self.bands, self.dtype, self.pool, self.upload))
            self.finishing[job.cog] = finished
        elif cog.outstanding == 0 and self.archive is None:
            self.finishing[job.cog] = self._finisher.submit(finish_cog, cog, self.bands, self.dtype, self._spills)

    def _remade(self, holder: int | None, job: _Job) -> None:
        """Lost pixels were made again: held for the reductions waiting for them (which have them made once more
        if `holder` is None: their actor died since)."""
        key = (job.cog, self._unit(job))
        self._remaking.discard(key)
        if holder is not None:
            self._holdings.hold(key, holder)
        if job.reduction is not None:
            for piece in job.reduction.pieces:
                self._remake_readers[(job.cog, piece.unit)] -= 1
                self._release((job.cog, piece.unit))
        self._release(key)

    def _release(self, key: Key) -> None:
        """Let a unit's pixels go once no reduction, first or remade, has still to read them."""
        if self.cogs[key[0]].pyramid.unread(key[1]) == 0 and self._remake_readers[key] <= 0:
            self._holdings.release(key)

    def _retry_deferred(self) -> None:
        waiting, self._deferred = self._deferred, []
        for job in waiting:
            self._reduce(job)

    def _queued(self) -> list[int]:
        queued = [0] * len(self.pool.actors)
        for actor, job, _ in self._pending.values():
            if job.share is None:  # a share runs beside the actor's queue
                queued[actor] += 1
        return queued

    def _least_queued(self) -> int:
        queued = self._queued()
        return min(range(len(queued)), key=queued.__getitem__)

    def _reducer(self, keys: list[Key]) -> int:
        """The actor to make an overview block: the one holding most of its pieces, unless an actor on the same
        node has at least two calls fewer queued (at the end of a render, when the last levels would otherwise
        queue up on one actor while the others idle; its pieces are then shared with it)."""
        queued = self._queued()
        held = self._holdings.counts(keys)
        best = min(range(len(queued)), key=lambda a: (-held.get(a, 0), queued[a]))
        node = self._node_of.get(best)
        near = [a for a in range(len(queued)) if node is not None and self._node_of.get(a) == node]
        idlest = min(near, key=queued.__getitem__, default=best)
        return idlest if queued[idlest] + 2 <= queued[best] else best

    def _unit(self, job: _Job) -> UnitKey:
        """The unit a tile or reduction job makes."""
        return (0, *self._local(self.cogs[job.cog], job.tile)) if job.tile is not None else job.reduction.key

    def _global(self, cog: _Cog, local: tuple[int, int]) -> tuple[int, int]:
        """A tile's (row, col) in the whole grid from its (row, col) within its COG (`_local`'s inverse)."""
        window = cog.shard.window
        return local[0] + int(window.row_off) // self.tile_size, local[1] + int(window.col_off) // self.tile_size

    def _local(self, cog: _Cog, tile: tuple[int, int]) -> tuple[int, int]:
        """A tile's (row, col) within its COG."""
        window = cog.shard.window
        return tile[0] - int(window.row_off) // self.tile_size, tile[1] - int(window.col_off) // self.tile_size

    def _spill_here(self, framed: bytes) -> StoredBlock:
        """Blocks an actor could not spill where the driver reads (another node) are spilled by the driver."""
        if self._driver_spill is None:
            self._driver_spill = BlockSpill(self._spills / "driver.bin")
        return self._driver_spill.put_framed(framed)


def spills_for(shards: list[Shard]) -> Path:
    """The spill directory of a render: beside its first file."""
    return spill_dir(Path(shards[0].path))
