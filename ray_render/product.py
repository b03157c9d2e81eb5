"""From a tool tree to one deliverable: a COG, or shards of one grid packaged as a ZIP, with its STAC, described
by a `models.rendered.Rendered`. The export flow only orchestrates around this call (publish, status, delivery).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import shapely
from rasterio.windows import Window
from shapely.geometry import box

from models.errors import RenderError
from models.rendered import Quality, Rendered, RenderedShard
from models.schemas import LOSSY_COMPRESSIONS
from models.tooltree import ToolTree
from ray_render.cog_render import block_size
from ray_render.geometry import coverage
from ray_render.grid import OutputGrid
from ray_render.package_writer import PackageWriter
from ray_render.packaging import package_shards
from ray_render.quality import quality_of
from ray_render.quicklook import quicklook_png
from ray_render.render import RenderOptions, cog_options, render, render_shards
from ray_render.results import RenderResult, Shard
from ray_render.shards import SHARDS_DIR
from ray_render.stac import stac_item
from ray_render.stats import band_statistics
from ray_render.upload import S3Output, readable

ProgressCallback = Callable[[int, int], None]


def render_product(tree: ToolTree, grid: OutputGrid, staged: Path, options: RenderOptions, *,
                   shard_windows: list[tuple[str, Window]] | None = None, upload: S3Output | None = None,
                   acquired: list[datetime] = (), created: datetime,
                   on_progress: ProgressCallback | None = None) -> Rendered:
    """Render `tree` onto `grid` as the deliverable named by `staged` (export-7.tif; a package is export-7.zip
    beside it): one COG, or with `shard_windows` one COG per window, packaged. `upload` (export-7.tif, or
    export-7.zip with shards) lets the actors put the deliverable straight into S3 (`render`, `package_writer`);
    the result's `uri` says whether they did. `acquired` are the source scenes' acquisition times, for the STAC."""
    masked = options.cog.compress.lower() in LOSSY_COMPRESSIONS
    # A lossy COG marks missing pixels in its internal mask, not with a nodata value.
    nodata = None if masked else tree.root.nodata
    footprint = stac_footprint(tree, grid, [window for _, window in shard_windows or []])
    if not shard_windows:
        result = render(tree, grid, staged, options, on_progress=on_progress, upload=upload)
        with _readable(result.path, upload) as readable:
            statistics, quicklook = band_statistics(readable), quicklook_png(readable)
        item = stac_item(item_id=staged.stem, grid=grid, footprint=footprint, asset_href=f"./{staged.name}",
                         size=result.bytes, sha256=result.sha256, bands=result.bands, dtype=result.dtype, nodata=nodata,
                         acquired=list(acquired), created=created, statistics=statistics,
                         thumbnail_href=f"./{staged.stem}.png")
        return _rendered(result, "cog", result.path, result.bytes, result.sha256, [result], item, quicklook,
                         quality_of(tree, grid, result.bands, statistics))
    started = time.perf_counter()
    shards = [Shard(name, window, staged.parent / SHARDS_DIR / f"{staged.stem}-{name}.tif") for name, window in shard_windows]
    shards[0].path.parent.mkdir(parents=True, exist_ok=True)
    archive = None
    if block_size(cog_options(tree, options.cog), options.tile_size) is not None:  # the actors' own COGs
        archive = PackageWriter(base=staged.stem, path=staged.with_suffix(".zip"), output=upload, grid=grid,
                                footprint=footprint, nodata=nodata, masked=masked, alpha=tree.is_rgba(),
                                acquired=list(acquired), created=created)
    try:
        results = render_shards(tree, grid, shards, options, on_progress=on_progress, archive=archive)
    finally:
        if archive is not None:
            shutil.rmtree(shards[0].path.parent, ignore_errors=True)
    if not results:
        raise RenderError("nothing to render: no shard of the output has a tile with data")
    if archive is not None:
        package = archive.package
    else:  # GDAL's COG driver wrote each shard's file: they are packaged from there, locally
        package = package_shards(base=staged.stem, directory=shards[0].path.parent, grid=grid, results=results,
                                 footprint=footprint, nodata=nodata, masked=masked, acquired=list(acquired),
                                 created=created, alpha=tree.is_rgba())
    whole = RenderResult(path=package.path, bytes=package.bytes, sha256=package.sha256, width=grid.width,
                         height=grid.height, bands=results[0].bands, dtype=results[0].dtype,
                         tiles=sum(r.tiles for r in results), seconds=round(time.perf_counter() - started, 3))
    return _rendered(whole, "package", package.path, package.bytes, package.sha256, results, package.collection,
                     package.quicklook, quality_of(tree, grid, whole.bands, package.statistics))


def stac_footprint(tree: ToolTree, grid: OutputGrid, shard_windows: list[Window]) -> Any:
    """Where the output has data, for its STAC geometry: the scenes' data areas (their footprints for scenes that
    have none). Tiles are rendered wherever the footprints reach, so a shard (or a whole output) that no data area
    reaches is still made, all nodata; its geometry stays what its footprint gives rather than none at all."""
    by_data, by_footprint = coverage(tree, grid, data_areas=True), coverage(tree, grid)
    parts = [box(*grid.bounds)] if not shard_windows else [box(*grid.window_bounds(w)) for w in shard_windows]
    empty = [part for part in parts if by_data.intersection(part).is_empty]
    return shapely.union_all([by_data, *(by_footprint.intersection(part) for part in empty)])


@contextmanager
def _readable(where: str, upload: S3Output | None) -> Iterator[str]:
    """What GDAL opens to read the COG at `where` back (statistics, quicklook): a local file, or the object the
    actors uploaded, through /vsis3/ with the platform's credentials at the upload's endpoint."""
    if upload is None or where != upload.uri:
        yield where
        return
    with readable(upload) as path:
        yield path


def _rendered(whole: RenderResult, kind: str, uri: str, size: int, sha256: str, parts: list[RenderResult],
              stac: dict, quicklook: bytes, quality: Quality) -> Rendered:
    nodes: dict[str, int] = {}
    for part in parts:
        for node, tiles in part.tiles_by_node.items():
            nodes[node] = nodes.get(node, 0) + tiles
    shards = [RenderedShard(name=r.name, col_off=r.col_off, row_off=r.row_off, width=r.width, height=r.height,
                            bytes=r.bytes, sha256=r.sha256, tiles=r.tiles) for r in parts] if kind == "package" else []
    return Rendered(kind=kind, uri=uri, bytes=size, sha256=sha256, width=whole.width, height=whole.height,
                    bands=whole.bands, dtype=whole.dtype, tiles=whole.tiles, seconds=whole.seconds, shards=shards,
                    stac=stac, quicklook=quicklook, quality=quality, tiles_by_node=nodes,
                    driver_bytes=sum(p.driver_bytes for p in parts))
