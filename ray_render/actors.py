"""The Ray tile actor: a `TileRenderer` living in a worker, rendering windows on request.

With a `BlockSpec`, the actor also makes the COG's blocks where the pixels are: it encodes each tile's
full-resolution blocks and reduces overview blocks from the level below, spilling the encoded bytes to its own
file. Pixels an overview still needs stay in the actor's memory (`ray_render.holdings`) until the driver says
nothing reads them any more; shared with another actor, they go into Ray's object store on this node, by
reference, never through the driver.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import ray
from rasterio.windows import Window
from ray.util.metrics import Counter, Histogram

# Seconds per tile: the buckets a tuner reads off the dashboard's histogram.
LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


@ray.remote(num_cpus=1, concurrency_groups={"share": 1})
class TileActor:
    """Opens sources once (in its worker), then renders windows; returns the tile's pixels or its blocks.

    Made with what its worker keeps for good (GDAL's cache size, the render's environment), then told what to
    render with `begin`; a driver that keeps actors between renders (`ray_render.reserve`) begins each again.
    """

    def __init__(self, gdal_cache_mb: int, environment: dict | None = None):
        # The render's settings for remote scenes (credentials included: ray_render.remote), and GDAL's cache
        # size, set before the first dataset opens: GDAL reads its cache size once.
        from ray_render.remote import adopt

        adopt(environment or {})
        os.environ["GDAL_CACHEMAX"] = str(gdal_cache_mb)
        from ray_render.encoding import BlockMaker  # noqa: F401 - imported now, before the first render needs it
        from ray_render.tile import TileRenderer  # noqa: F401

        self._node = ray.get_runtime_context().get_node_id()
        # Custom metrics, shown in the Ray dashboard (Metrics) and exported to Prometheus, tagged by render.
        self._tiles = Counter("geoship_tiles_rendered", "Output tiles rendered.", tag_keys=("render",))
        self._bytes = Counter("geoship_source_bytes_read", "Source pixel bytes read into tiles.", tag_keys=("render",))
        self._latency = Histogram("geoship_tile_seconds", "Time to render one tile.", boundaries=LATENCY_BUCKETS,
                                  tag_keys=("render",))
        self._renderer = self._begin_failure = self._blocks = self._spills = None
        self._s3 = None  # a client for uploads, made with the first
        self._read_back = {}  # object URI -> the SHA-256 of its bytes so far (hashlib), read by hash_ranges
        self._held = {}  # holdings key -> the pixels of a unit an overview block above still reads

    def begin(self, tree: dict, grid: dict, resampling: str, label: str = "render", error_threshold: float = 0.125,
              blocks=None, spill_to: str | None = None, spill_node: str | None = None, name: str = "tile") -> None:
        """Set up one render: its tree and grid, and with a `BlockSpec` its block maker and spill file. A failure
        is raised again by every call of the render, as a constructor's would be."""
        from ray_render.encoding import BlockMaker
        from ray_render.tile import TileRenderer

        self.end()  # whatever an earlier render left
        self._begin_failure = None
        try:
            self._renderer = TileRenderer(tree, grid, resampling=resampling, error_threshold=error_threshold)
        except Exception as exc:
            self._begin_failure = exc
            return
        # Spill files are only of use to a driver that can read them (on its own node), or, when actors upload
        # the output themselves (spill_node None), to the actors on this node.
        local = spill_to if spill_node in (None, self._node) else None
        self._spills = local
        self._blocks = BlockMaker(blocks, local, name, self._node) if blocks is not None else None
        for metric in (self._tiles, self._bytes, self._latency):
            metric.set_default_tags({"render": label})
        self._bytes_reported = 0
        # Busy seconds by step, read with stats() (tuning: is the time in reading, encoding or reducing?).
        self._seconds = {"render": 0.0, "encode": 0.0, "reduce": 0.0, "upload": 0.0}

    def render(self, key: tuple[int, int], window: tuple[int, int, int, int]):
        """(key, pixels) for the window (col_off, row_off, width, height)."""
        return key, self._render(window)

    def render_blocks(self, key: tuple[int, int], window: tuple[int, int, int, int], tile_size: int, hold=None,
                      encode: bool = True, drop=()):
        """Render the tile `key` (its row and column in its COG) and make its blocks: ({block key: block}, this
        actor's node). `hold`: the key to keep its pixels under for the overview above; without `encode`, only
        that (a tile made again after its pixels were lost, its blocks already stored). `drop`: held pixels
        nothing reads any more."""
        self._drop(drop)
        pixels = self._render(window)
        made = {}
        if encode:
            started = time.perf_counter()
            made = self._blocks.tile_blocks(key, pixels, tile_size)
            self._seconds["encode"] += time.perf_counter() - started
        if hold is not None:
            self._held[hold] = pixels
        return made, self._node

    def reduce(self, reduction, hold, encode: bool, drop, local, *shared):
        """Make one overview block from the pixels below it: ({block key: block}, this actor's node). Each piece
        of `reduction` is held here under its key in `local`, or, where that is None, is the next of `shared`.
        `hold`, `encode` and `drop` as for `render_blocks`."""
        self._drop(drop)
        others = iter(shared)
        try:
            arrays = [self._held[key] if key is not None else next(others) for key in local]
        except KeyError as missing:
            raise RuntimeError(f"tile actor: the pixels of {missing} are not held here") from None
        started = time.perf_counter()
        made, pixels = self._blocks.reduce(reduction, arrays, encode)
        self._seconds["reduce"] += time.perf_counter() - started
        if hold is not None:
            self._held[hold] = pixels
        return ({reduction.key: made} if encode else {}), self._node

    @ray.method(num_returns=2, concurrency_group="share")
    def share(self, key):
        """A unit's held pixels for a reduction on another actor: (True, the pixels). The driver waits on the
        first, small value and passes the second on by reference: the pixels go into this node's object store,
        never to the driver.

        Shares run on their own thread, beside the tile or reduction this actor is busy with: a reduction
        elsewhere would otherwise wait behind this actor's queued tiles (a tenth of a second or more each), and
        the last overview levels queue up at the end of a render. Reading the dict of held pixels from another
        thread is safe; shares change nothing (drops come only with the calls that run in order)."""
        return True, self._held[key]

    def _drop(self, keys) -> None:
        for key in keys:
            self._held.pop(key, None)

    def node(self) -> str:
        """The Ray node this actor runs on: its spill file is on that node's disk."""
        return ray.get_runtime_context().get_node_id()

    def read_spill(self, ranges: list[tuple[str, int, int]]) -> bytes:
        """The bytes of spill files on this node at each (file name, offset, length), one after another."""
        from ray_render.blocks import read_ranges

        return b"".join(read_ranges(Path(self._spills) / name, [(offset, length)]) for name, offset, length in ranges)

    def upload_part(self, output, upload_id: str, number: int, segments, header: bytes, nodes: list[str], *fetched):
        """Upload part `number` of the output's multipart upload (`upload.put_part`); `fetched` holds the bytes
        of its segments on `nodes`, read there by other actors."""
        from ray_render.upload import local_reader, put_part

        started = time.perf_counter()
        answer = put_part(self._client(output), output, upload_id, number, segments, header,
                          local_reader(Path(self._spills)), dict(zip(nodes, fetched, strict=True)))
        self._seconds["upload"] += time.perf_counter() - started
        return answer

    def hash_object(self, output) -> tuple[int, str]:
        """The uploaded object's size and SHA-256, read back from the store."""
        from ray_render.upload import hash_object

        return hash_object(self._client(output), output)

    def hash_ranges(self, output, ranges: list[tuple[int, int]]) -> list[str]:
        """The SHA-256 of each (offset, length) of an uploaded object, read back from the store once; the
        digest of the whole is kept for `copy_then` to finish."""
        from ray_render.upload import hash_ranges

        found = hash_ranges(self._client(output), output, ranges)
        self._read_back[output.uri] = found.whole
        return found.digests()

    def copy_then(self, output, source, source_size: int, tail: bytes, content_type: str) -> tuple[int, str]:
        """Make `output` the object `source` followed by `tail` (`upload.upload_copy_then`); returns its size and
        SHA-256: `source`'s digest from `hash_ranges`, continued with the tail (or, if this actor did not read
        `source`, the new object read back)."""
        from ray_render.upload import hash_object, upload_copy_then

        size = upload_copy_then(output, source, source_size, tail, content_type)
        whole = self._read_back.pop(source.uri, None)
        if whole is None:
            return hash_object(self._client(output), output)
        whole.update(tail)
        return size, whole.hexdigest()

    def drop_spill(self) -> None:
        """Remove this actor's spill file: the render has no more use for it."""
        if self._blocks is not None:
            self._blocks.discard()

    def end(self) -> None:
        """Let go of the render's sources and files: the actor waits, idle, for the next `begin`."""
        self.drop_spill()
        self._renderer = self._blocks = self._s3 = self._spills = None
        self._read_back, self._held = {}, {}

    def _client(self, output):
        if self._s3 is None:
            from ray_render.upload import s3_client

            self._s3 = s3_client(output.endpoint_url)
        return self._s3

    def stats(self) -> dict[str, int | str]:
        """What this actor has done, and where it runs: bytes read (readable without a metrics backend), node."""
        return {"bytes_read": self._renderer.bytes_read, "node_id": ray.get_runtime_context().get_node_id(),
                "seconds": {step: round(seconds, 3) for step, seconds in self._seconds.items()}}

    def _render(self, window: tuple[int, int, int, int]):
        if self._begin_failure is not None:
            raise self._begin_failure
        started = time.perf_counter()
        pixels = self._renderer.render(Window(*window))
        elapsed = time.perf_counter() - started
        self._seconds["render"] += elapsed
        self._latency.observe(elapsed)
        self._tiles.inc()
        read = self._renderer.bytes_read
        if read > self._bytes_reported:
            self._bytes.inc(read - self._bytes_reported)
            self._bytes_reported = read
        return pixels
