"""The Ray tile actor: a `TileRenderer` living in a worker, rendering windows on request."""

from __future__ import annotations

import os
import time

import ray
from rasterio.windows import Window
from ray.util.metrics import Counter, Histogram

# Seconds per tile: the buckets a tuner reads off the dashboard's histogram.
LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


@ray.remote(num_cpus=1)
class TileActor:
    """Opens sources once (in its worker), then renders windows; returns only the tile's pixels."""

    def __init__(self, tree: dict, grid: dict, resampling: str, gdal_cache_mb: int, label: str = "render",
                 error_threshold: float = 0.125):
        # Set before the first dataset opens: GDAL reads its cache size once.
        os.environ["GDAL_CACHEMAX"] = str(gdal_cache_mb)
        from ray_render.tile import TileRenderer  # imported here so the actor's worker builds it

        self._renderer = TileRenderer(tree, grid, resampling=resampling, error_threshold=error_threshold)
        # Custom metrics, shown in the Ray dashboard (Metrics) and exported to Prometheus, tagged by render.
        tags = {"render": label}
        self._tiles = Counter("geoship_tiles_rendered", "Output tiles rendered.", tag_keys=("render",))
        self._bytes = Counter("geoship_source_bytes_read", "Source pixel bytes read into tiles.", tag_keys=("render",))
        self._latency = Histogram("geoship_tile_seconds", "Time to render one tile.", boundaries=LATENCY_BUCKETS,
                                  tag_keys=("render",))
        for metric in (self._tiles, self._bytes, self._latency):
            metric.set_default_tags(tags)
        self._bytes_reported = 0

    def render(self, key: tuple[int, int], window: tuple[int, int, int, int]):
        """(key, pixels) for the window (col_off, row_off, width, height)."""
        started = time.perf_counter()
        pixels = self._renderer.render(Window(*window))
        self._latency.observe(time.perf_counter() - started)
        self._tiles.inc()
        read = self._renderer.bytes_read
        if read > self._bytes_reported:
            self._bytes.inc(read - self._bytes_reported)
            self._bytes_reported = read
        return key, pixels

    def stats(self) -> dict[str, int | str]:
        """What this actor has done, and where it runs: bytes read (readable without a metrics backend), node."""
        return {"bytes_read": self._renderer.bytes_read, "node_id": ray.get_runtime_context().get_node_id()}
