"""STAC metadata of a render, built with pystac: an Item per COG (projection, file and raster extensions) and,
for a sharded export, a Collection tying the shards' Items and their VRT together.

pystac writes the current STAC version and extension schemas (projection v2: `proj:code`), so clients that
validate STAC (stac-validator, pystac itself) accept what we publish; the functions return plain JSON dicts,
which the typed `Rendered` carries and the artifact store writes beside the file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pystac
import shapely
from pyproj import CRS
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics
from shapely.geometry import mapping

from ray_render.geometry import reproject_geometry
from ray_render.grid import OutputGrid

COG_MEDIA_TYPE = pystac.MediaType.COG
# The file extension's checksum is a multihash: 0x12 (SHA-256), 0x20 (32 bytes), then the digest.
SHA256_MULTIHASH_PREFIX = "1220"


def stac_item(*, item_id: str, grid: OutputGrid, footprint, asset_href: str, size: int, sha256: str, bands: list[str],
              dtype: str, nodata: float | None, acquired: list[datetime], created: datetime,
              statistics: list[dict[str, float]] | None = None, thumbnail_href: str | None = None) -> dict[str, Any]:
    """The Item of one COG: `footprint` is where it has data (in the grid's CRS); `acquired` the inputs' times;
    `statistics` one dict per band (minimum, maximum, mean, stddev, valid_percent), when known; `thumbnail_href`
    its quicklook PNG, when made.

    The Item's time is the inputs' acquisition time (a range when they differ), else its creation time.
    """
    outline = reproject_geometry(footprint, grid.crs, "EPSG:4326")
    start = end = None
    if not acquired:
        moment = created
    elif min(acquired) == max(acquired):
        moment = acquired[0]
    else:
        moment, start, end = None, min(acquired), max(acquired)
    item = pystac.Item(id=item_id, geometry=mapping(outline), bbox=list(shapely.bounds(outline)), datetime=moment,
                       start_datetime=start, end_datetime=end, properties={})
    item.common_metadata.created = created
    _describe_grid(ProjectionExtension.ext(item, add_if_missing=True), grid)

    asset = pystac.Asset(href=asset_href, media_type=COG_MEDIA_TYPE, roles=["data"],
                         title=f"{item_id} ({', '.join(bands)})")
    item.add_asset("data", asset)
    file_info = FileExtension.ext(asset, add_if_missing=True)
    file_info.size, file_info.checksum = size, SHA256_MULTIHASH_PREFIX + sha256
    raster_bands = []
    for index, band in enumerate(bands):
        described = RasterBand.create(data_type=DataType(dtype), nodata=nodata,
                                      statistics=Statistics.create(**statistics[index]) if statistics else None)
        described.properties["name"] = band  # which band it is; raster:bands has no field of its own for it
        raster_bands.append(described)
    RasterExtension.ext(asset, add_if_missing=True).bands = raster_bands
    if thumbnail_href:
        item.add_asset("thumbnail", _thumbnail(thumbnail_href))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def renamed_item(item: dict[str, Any], *, item_id: str, asset_href: str, thumbnail_href: str | None,
                 created: datetime) -> dict[str, Any]:
    """The Item of a COG (`stac_item`'s) for the same bytes under another name: what a reused render is
    described by. Geometry, grid, checksum and statistics stay; the id, the hrefs and the creation time change."""
    renamed = pystac.Item.from_dict(item, preserve_dict=False)
    old_id, renamed.id = renamed.id, item_id
    renamed.common_metadata.created = created
    data = renamed.assets["data"]
    data.href = asset_href
    if data.title and data.title.startswith(old_id):
        data.title = item_id + data.title[len(old_id):]
    if "thumbnail" in renamed.assets:
        if thumbnail_href:
            renamed.assets["thumbnail"].href = thumbnail_href
        else:
            del renamed.assets["thumbnail"]
    return renamed.to_dict(include_self_link=False, transform_hrefs=False)


def _describe_grid(projection: ProjectionExtension, grid: OutputGrid) -> None:
    """The grid's CRS (`proj:code` where an authority names it, else its WKT2), shape, transform and bounds."""
    authority = CRS.from_user_input(grid.crs).to_authority()
    if authority is not None:
        projection.code = ":".join(authority)
    else:
        projection.code = None
        projection.wkt2 = CRS.from_user_input(grid.crs).to_wkt()
    projection.shape = [grid.height, grid.width]
    projection.transform = list(grid.transform)[:6]
    projection.bbox = list(grid.bounds)


def _thumbnail(href: str) -> pystac.Asset:
    return pystac.Asset(href=href, media_type=pystac.MediaType.PNG, roles=["thumbnail"], title="quicklook")


def stac_collection(*, collection_id: str, description: str, items: list[dict[str, Any]], item_hrefs: list[str],
                    vrt_href: str, thumbnail_href: str | None = None) -> dict[str, Any]:
    """The Collection of a sharded export: the union of its items' extents, links to them, the VRT as an asset."""
    west, south, east, north = (min(i["bbox"][0] for i in items), min(i["bbox"][1] for i in items),
                                max(i["bbox"][2] for i in items), max(i["bbox"][3] for i in items))
    times = sorted(pystac.utils.str_to_datetime(t) for i in items
                   for t in (i["properties"].get(k) for k in ("datetime", "start_datetime", "end_datetime")) if t)
    collection = pystac.Collection(
        id=collection_id, description=description, license="other",
        extent=pystac.Extent(pystac.SpatialExtent([[west, south, east, north]]),
                             pystac.TemporalExtent([[times[0] if times else None, times[-1] if times else None]])))
    for href in item_hrefs:
        collection.add_link(pystac.Link(rel=pystac.RelType.ITEM, target=href, media_type=pystac.MediaType.GEOJSON))
    collection.add_asset("mosaic", pystac.Asset(href=vrt_href, media_type=pystac.MediaType.XML, roles=["data"],
                                                title="every shard as one raster (GDAL VRT)"))
    if thumbnail_href:
        collection.add_asset("thumbnail", _thumbnail(thumbnail_href))
    return collection.to_dict(include_self_link=False, transform_hrefs=False)


def in_collection(item: dict[str, Any], collection_id: str, collection_href: str) -> dict[str, Any]:
    """The item, linked to its collection."""
    links = [{"rel": "collection", "href": collection_href, "type": "application/json"},
             {"rel": "parent", "href": collection_href, "type": "application/json"}]
    return {**item, "collection": collection_id, "links": item["links"] + links}
