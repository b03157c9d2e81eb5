"""Package a sharded render as one deliverable: a ZIP of the shards' COGs, their STAC items, a VRT and a
STAC collection tying them together.

The ZIP stores (does not deflate) its members: COGs are compressed already, and stored members keep their
byte ranges, so GDAL reads a shard or the whole mosaic straight from the archive
(`/vsizip/export-7.zip/export-7/export-7.vrt`). ZIP64 lifts the 4 GiB limit.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import shapely
from rasterio.windows import Window
from shapely.geometry import box

from ray_render.geometry import polygonal_part
from ray_render.grid import OutputGrid
from ray_render.publish import publish
from ray_render.quicklook import QUICKLOOK_SIZE, picture_of
from ray_render.results import RenderResult
from ray_render.sampling import mosaic_sample
from ray_render.shards import mosaic_vrt
from ray_render.stac import in_collection, stac_collection, stac_item
from ray_render.stats import SAMPLE_SIZE, band_statistics, statistics_of
from ray_render.writer import sha256_of


@dataclass(frozen=True)
class Package:
    """The packaged deliverable and the STAC collection describing it."""

    path: str  # a local path, or an s3:// URI
    bytes: int
    sha256: str
    collection: dict
    quicklook: bytes
    statistics: list[dict[str, float]]  # of the whole mosaic, per band


def package_shards(*, base: str, directory: Path, grid: OutputGrid, results: list[RenderResult], footprint,
                   nodata: float | None, masked: bool, acquired: list[datetime], created: datetime,
                   alpha: bool = False) -> Package:
    """Write each shard's item, the VRT and the collection beside the shards in `directory`, then ZIP them all
    into `directory`'s parent as <base>.zip (via a temporary name), `base` being the export's name (export-7).
    `directory` is removed afterwards. (For shards GDAL's COG driver wrote: the actors' own COGs are packaged
    from their blocks by `package_writer`.)"""
    vrt = shards_vrt(grid, results, nodata, masked, alpha)
    quicklook, statistics = read_back(grid, results, [r.path for r in results])
    members, collection = package_documents(
        base=base, grid=grid, shards=[(r, band_statistics(r.path)) for r in results], footprint=footprint,
        nodata=nodata, acquired=acquired, created=created, quicklook=quicklook, vrt=vrt)
    for name, data in members.items():
        (directory / name).write_bytes(data)
    archive = directory.parent / f"{base}.zip"
    partial = archive.with_name(archive.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zipped:
            for member in sorted(directory.iterdir()):
                zipped.write(member, arcname=f"{base}/{member.name}")
        publish(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    return Package(path=str(archive), bytes=archive.stat().st_size, sha256=sha256_of(archive), collection=collection,
                   quicklook=members[f"{base}.png"], statistics=statistics)


def shards_vrt(grid: OutputGrid, results: list[RenderResult], nodata: float | None, masked: bool, alpha: bool) -> str:
    """The VRT of the shards in `results`, by their file names beside it."""
    sources = [(Path(r.path).name, Window(r.col_off, r.row_off, r.width, r.height)) for r in results]
    first = results[0]
    return mosaic_vrt(grid, sources, first.bands, first.dtype, nodata, masked, alpha)


def read_back(grid: OutputGrid, results: list[RenderResult], paths: list[str]) -> tuple[bytes, list[dict]]:
    """The quicklook and band statistics of the whole mosaic, read from the shards at `paths` (GDAL paths, in
    the order of `results`), from their overviews."""
    shards = [(path, Window(r.col_off, r.row_off, r.width, r.height)) for path, r in zip(paths, results, strict=True)]
    picture = picture_of(mosaic_sample(shards, grid.width, grid.height, QUICKLOOK_SIZE))
    return picture, statistics_of(mosaic_sample(shards, grid.width, grid.height, SAMPLE_SIZE))


def package_documents(*, base: str, grid: OutputGrid, shards: list[tuple[RenderResult, list[dict]]], footprint,
                      nodata: float | None, acquired: list[datetime], created: datetime, quicklook: bytes,
                      vrt: str) -> tuple[dict[str, bytes], dict]:
    """The package's documents beside its shards' COGs, by file name (in the order they go into the archive):
    each shard's STAC item (with its band statistics, given beside it), the VRT, the quicklook and the STAC
    collection; and the collection."""
    members, hrefs, items = {}, [], []
    for result, shard_statistics in shards:
        window = Window(result.col_off, result.row_off, result.width, result.height)
        shard_grid = OutputGrid(grid.crs, grid.window_transform(window), result.width, result.height)
        area = polygonal_part(shapely.intersection(footprint, box(*shard_grid.bounds)))
        item = stac_item(item_id=f"{base}-{result.name}", grid=shard_grid, footprint=area,
                         asset_href=f"./{Path(result.path).name}", size=result.bytes, sha256=result.sha256,
                         bands=result.bands, dtype=result.dtype, nodata=nodata, acquired=acquired, created=created,
                         statistics=shard_statistics)
        item = in_collection(item, base, "./collection.json")
        name = f"{base}-{result.name}.stac.json"
        members[name] = json.dumps(item, indent=2).encode()
        hrefs.append(f"./{name}")
        items.append(item)
    members[f"{base}.vrt"] = vrt.encode()
    members[f"{base}.png"] = quicklook
    collection = stac_collection(collection_id=base, item_hrefs=hrefs, vrt_href=f"./{base}.vrt", items=items,
                                 description=f"geoship {base}: {len(shards)} shards of one "
                                             f"{grid.width} x {grid.height} px grid in {grid.crs}",
                                 thumbnail_href=f"./{base}.png")
    members["collection.json"] = json.dumps(collection, indent=2).encode()
    return members, collection


def renamed_text(text: str, old_base: str, new_base: str) -> str:
    """`text` (a VRT, a STAC document) with every name made from `old_base` made from `new_base` instead:
    export-7, export-7-r0c1.tif, ./export-7.vrt, but never export-70."""
    return re.sub(rf"(?<![\w-]){re.escape(old_base)}(?!\w)", new_base, text)


def rename_package(source: Path, old_base: str, new_base: str, target: Path) -> tuple[int, str]:
    """Write the package `source` (named for `old_base`) again as `target`, named for `new_base`: its members
    renamed, the names inside its VRT and STAC documents too, every COG's bytes copied as they are (nothing
    decoded). Returns the new archive's size and SHA-256."""
    partial = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(source) as old, \
                zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as new:
            for info in old.infolist():
                member = zipfile.ZipInfo(renamed_text(info.filename, old_base, new_base), info.date_time)
                member.external_attr = info.external_attr
                if info.filename.endswith((".json", ".vrt")):
                    new.writestr(member, renamed_text(old.read(info).decode(), old_base, new_base))
                    continue
                member.file_size = info.file_size  # known beforehand: ZIP64 when it needs it
                with old.open(info) as reader, new.open(member, "w") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
        publish(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size, sha256_of(target)
